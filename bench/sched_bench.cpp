// Scheduler benchmarks, beside Boost.Fiber (the peer). The floor is BM_Fcontext_Switch
// (greenlet_bench.cpp): one raw one-way jump_fcontext.
//   BM_Sched_Yield               two tasks (the main task and one spawned) yielding to each other;
//                                item = one yield, which is one task-to-task switch
//   BM_BoostFiber_Yield          the same with boost::this_fiber::yield() between two fibers
//   BM_Sched_YieldMany/tasks:N   N tasks plus the main task in one round-robin ring; item = one
//                                switch (targets: >= 80M/s at 1,024 tasks, >= 40M/s at 16,384)
//   BM_BoostFiber_YieldMany/..   the same ring of fibers
//   BM_Sched_SpawnJoin           spawn an empty task and join it (stack from the pool, one switch
//                                in, one out, record freed); item = one spawn + join
//   BM_BoostFiber_SpawnJoin      boost::fibers::fiber([]{}).join() with its default stack
//   BM_Sched_BlockedMemory       100,000 tasks each blocked on a gr::semaphore: resident memory
//                                per task (RSS delta from /proc/self/statm / count), as a counter
//   BM_BoostFiber_BlockedMemory  the same with fibers blocked on a boost::fibers::condition_variable
#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <gr/runtime/stack.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <boost/fiber/all.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <vector>

#include <unistd.h>

namespace {

// Ring members get small stacks: a ring of 16,384 default (256 KiB) stacks would measure address
// space, not switching.
constexpr std::size_t ring_stack = 16 * 1024;

// ---- yield between two tasks ------------------------------------------------------------------

void BM_Sched_Yield(benchmark::State& state) { gr_bench::yield_ping_pong(state); }
BENCHMARK(BM_Sched_Yield);

void BM_BoostFiber_Yield(benchmark::State& state) {
  bool stop = false;
  boost::fibers::fiber partner([&] {
    while (!stop) boost::this_fiber::yield();
  });
  boost::this_fiber::yield();
  for (auto _ : state) boost::this_fiber::yield();
  stop = true;
  partner.join();
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_BoostFiber_Yield);

// ---- a round-robin ring of many tasks -------------------------------------------------------------

void BM_Sched_YieldMany(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool stop = false;
  for (std::size_t i = 0; i < n; ++i)
    gr::spawn(
        [&stop] {
          while (!stop) gr::yield();
        },
        {.stack_size = ring_stack})
        .detach();
  gr::yield();  // every task starts and queues up behind the main task
  for (auto _ : state) gr::yield();  // one lap: every task once, then the main task
  stop = true;
  gr::scheduler::current().run();
  state.SetItemsProcessed(static_cast<std::int64_t>(n + 1) * state.iterations());
}
BENCHMARK(BM_Sched_YieldMany)->ArgName("tasks")->Arg(1024)->Arg(16384);

void BM_BoostFiber_YieldMany(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  bool stop = false;
  std::vector<boost::fibers::fiber> ring;
  ring.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    ring.emplace_back(std::allocator_arg, boost::fibers::fixedsize_stack(ring_stack), [&stop] {
      while (!stop) boost::this_fiber::yield();
    });
  boost::this_fiber::yield();
  for (auto _ : state) boost::this_fiber::yield();
  stop = true;
  for (auto& f : ring) f.join();
  state.SetItemsProcessed(static_cast<std::int64_t>(n + 1) * state.iterations());
}
BENCHMARK(BM_BoostFiber_YieldMany)->ArgName("tasks")->Arg(1024)->Arg(16384);

// ---- spawn and join an empty task -------------------------------------------------------------

void BM_Sched_SpawnJoin(benchmark::State& state) {
  for (auto _ : state) gr::spawn([] {}).join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Sched_SpawnJoin);

void BM_BoostFiber_SpawnJoin(benchmark::State& state) {
  for (auto _ : state) boost::fibers::fiber([] {}).join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BoostFiber_SpawnJoin);

// ---- memory per blocked task ---------------------------------------------------------------------

constexpr std::size_t blocked_count = 100'000;

void report_memory(benchmark::State& state, std::size_t before, std::size_t after, std::size_t n) {
  const double delta = after > before ? static_cast<double>(after - before) : 0.0;
  state.counters["tasks"] = static_cast<double>(n);
  state.counters["KiB_per_task"] = n ? delta / 1024.0 / static_cast<double>(n) : 0.0;
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}

// Arg: the task's stack size in KiB (0: gr's default). Time is spawning the tasks and running
// each into its block; the tear-down is not timed.
void BM_Sched_BlockedMemory(benchmark::State& state) {
  const std::size_t stack_size = static_cast<std::size_t>(state.range(0)) * 1024;
  for (auto _ : state) {
    gr::semaphore gate{0, "gate"};
    gr::wait_group done;
    gr::trim_stack_pool();  // stacks pooled by earlier benchmarks would hide the cost of fresh ones
    const std::size_t before = gr_bench::resident_bytes();
    std::size_t made = 0;
    try {
      for (; made < blocked_count; ++made) {
        gr::spawn(
            [&] {
              gate.acquire();
              done.done();
            },
            {.stack_size = stack_size})
            .detach();
        done.add(1);
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
    gr::yield();  // every task runs into its acquire and parks
    const std::size_t after = gr_bench::resident_bytes();
    state.PauseTiming();
    gate.release(static_cast<std::ptrdiff_t>(made));
    done.wait();
    gr::scheduler::current().run();
    gr::trim_stack_pool();
    state.ResumeTiming();
    report_memory(state, before, after, made);
  }
}
BENCHMARK(BM_Sched_BlockedMemory)
    ->ArgName("stack_kib")
    ->Arg(0)
    ->Arg(16)
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

void BM_BoostFiber_BlockedMemory(benchmark::State& state) {
  for (auto _ : state) {
    boost::fibers::mutex m;
    boost::fibers::condition_variable cv;
    bool go = false;
    std::vector<boost::fibers::fiber> fibers;
    fibers.reserve(blocked_count);
    const std::size_t before = gr_bench::resident_bytes();
    try {
      for (std::size_t i = 0; i < blocked_count; ++i)
        fibers.emplace_back([&] {
          std::unique_lock lock(m);
          cv.wait(lock, [&] { return go; });
        });
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
    boost::this_fiber::yield();  // every fiber runs into its wait
    const std::size_t after = gr_bench::resident_bytes();
    state.PauseTiming();
    {
      std::lock_guard lock(m);
      go = true;
    }
    cv.notify_all();
    for (auto& f : fibers) f.join();
    state.ResumeTiming();
    report_memory(state, before, after, fibers.size());
  }
}
BENCHMARK(BM_BoostFiber_BlockedMemory)->Iterations(1)->Repetitions(1)->Unit(benchmark::kMillisecond);

}  // namespace
