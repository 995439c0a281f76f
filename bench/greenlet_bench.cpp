// Greenlet benchmarks, beside their floor and peers:
//   BM_Fcontext_Switch           raw jump_fcontext ping-pong: the floor of every switch in gr
//   BM_Fcontext_Ring/contexts:N  N raw contexts plus the loop in one ring, each jumping to the next
//                                (16 KiB mmap'd stacks, cache-coloured as gr's): the floor of
//                                BM_Sched_YieldMany, where every switch lands on a context a
//                                whole lap has evicted
//   BM_BoostContextFiber_Switch  boost::context::fiber ping-pong: the peer at this layer
//   BM_Greenlet_Switch           gr::greenlet ping-pong through switch_to
//   BM_Greenlet_CreateDestroy    construct, run to completion (one switch in, one out), destroy
//   BM_Thread_PingPong           two std::threads handing a token through a mutex + condvar
//   BM_Greenlet_Million          1,000,000 live suspended greenlets: memory per greenlet, and how
//                                many stacks got a guard page vs a slab slot
// One item is one one-way switch, one create+destroy or one hand-off (SetItemsProcessed).
#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/runtime/stack.hpp>

#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

namespace {

namespace fctx = boost::context::detail;

// ---- the floor: raw fcontext ----------------------------------------------------------------

[[noreturn]] void fcontext_echo(fctx::transfer_t t) {
  for (;;) t = fctx::jump_fcontext(t.fctx, nullptr);
}

void BM_Fcontext_Switch(benchmark::State& state) {
  constexpr std::size_t size = 64 * 1024;
  auto memory = std::make_unique<std::byte[]>(size);
  fctx::fcontext_t c = fctx::make_fcontext(memory.get() + size, size, &fcontext_echo);
  fctx::transfer_t t = fctx::jump_fcontext(c, nullptr);  // start it: it jumps straight back
  for (auto _ : state) t = fctx::jump_fcontext(t.fctx, nullptr);
  benchmark::DoNotOptimize(t);
  // The context is left suspended in fcontext_echo, which owns nothing: freeing its stack is enough.
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_Fcontext_Switch);

// fcontext_ring: context i, once started, stores the context that jumped to it (its predecessor,
// i - 1, or the loop for context 0) and jumps to context i + 1; the last one jumps to the loop.
struct fcontext_ring {
  std::vector<fctx::fcontext_t> ctx;  // ctx[i]: context i, suspended; ctx[n]: the loop
  std::vector<std::size_t> index;     // what context i gets as its start data: &index[i] == i
  std::size_t n = 0;
};
fcontext_ring* g_ring = nullptr;

[[noreturn]] void fcontext_ring_member(fctx::transfer_t t) {
  fcontext_ring& r = *g_ring;
  const std::size_t i = *static_cast<const std::size_t*>(t.data);
  const std::size_t prev = i == 0 ? r.n : i - 1;
  for (;;) {
    r.ctx[prev] = t.fctx;
    t = fctx::jump_fcontext(r.ctx[i + 1], &r.index[i + 1]);
  }
}

void BM_Fcontext_Ring(benchmark::State& state) {
  constexpr std::size_t size = 16 * 1024;  // as BM_Sched_YieldMany's tasks
  fcontext_ring r;
  r.n = static_cast<std::size_t>(state.range(0));
  r.ctx.resize(r.n + 1);
  r.index.resize(r.n + 1);
  std::vector<void*> stacks(r.n);
  for (std::size_t i = 0; i < r.n; ++i) {
    r.index[i] = i;
    stacks[i] = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stacks[i] == MAP_FAILED) {
      state.SkipWithError("mmap failed");
      for (std::size_t j = 0; j < i; ++j) ::munmap(stacks[j], size);
      return;
    }
    // Coloured as gr colours its stacks (gr::stack::colour): without it every context's saved
    // registers share one page offset and compete for a few cache sets, and the floor would be
    // slower than it need be (57M against 75M-93M switches/s at 1,024 contexts, measured).
    const std::size_t colour = i % gr::stack::colours * gr::stack::colour_step;
    r.ctx[i] = fctx::make_fcontext(static_cast<char*>(stacks[i]) + size - colour, size - colour, &fcontext_ring_member);
  }
  g_ring = &r;
  auto lap = [&r] { r.ctx[r.n - 1] = fctx::jump_fcontext(r.ctx[0], &r.index[0]).fctx; };
  lap();  // start every context
  for (auto _ : state) lap();
  g_ring = nullptr;
  // Every context is left suspended in fcontext_ring_member, which owns nothing.
  for (void* p : stacks) ::munmap(p, size);
  state.SetItemsProcessed(static_cast<std::int64_t>(r.n + 1) * state.iterations());
}
BENCHMARK(BM_Fcontext_Ring)->ArgName("contexts")->Arg(1024)->Arg(16384);

// ---- the peer: Boost.Context's fiber --------------------------------------------------------

void BM_BoostContextFiber_Switch(benchmark::State& state) {
  namespace bc = boost::context;
  bc::fiber f{[](bc::fiber&& caller) {
    for (;;) caller = std::move(caller).resume();
    return std::move(caller);
  }};
  f = std::move(f).resume();  // start it: it resumes us at once
  for (auto _ : state) f = std::move(f).resume();
  state.SetItemsProcessed(2 * state.iterations());
  // ~fiber unwinds the suspended fiber (boost::context::detail::forced_unwind).
}
BENCHMARK(BM_BoostContextFiber_Switch);

// ---- gr::greenlet ------------------------------------------------------------------------------

void BM_Greenlet_Switch(benchmark::State& state) {
  gr::greenlet* main = gr::greenlet::current();
  gr::greenlet g([main](void* arg) -> void* {
    for (;;) arg = main->switch_to(arg);
  });
  void* v = g.switch_to();  // start it: it switches straight back
  for (auto _ : state) v = g.switch_to(v);
  benchmark::DoNotOptimize(v);
  state.SetItemsProcessed(2 * state.iterations());
  // ~greenlet raises greenlet_exit inside g and unwinds it.
}
BENCHMARK(BM_Greenlet_Switch);

void BM_Greenlet_CreateDestroy(benchmark::State& state) {
  for (auto _ : state) {
    gr::greenlet g([](void* arg) -> void* { return arg; });
    benchmark::DoNotOptimize(g.switch_to(&g));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Greenlet_CreateDestroy);

// ---- the baseline: two threads and a condition variable ---------------------------------------

void BM_Thread_PingPong(benchmark::State& state) {
  std::mutex m;
  std::condition_variable cv;
  int turn = 0;  // 0: the benchmark thread holds the token, 1: the partner does
  bool stop = false;
  std::thread partner([&] {
    std::unique_lock lock(m);
    for (;;) {
      cv.wait(lock, [&] { return turn == 1 || stop; });
      if (stop) return;
      turn = 0;
      cv.notify_one();
    }
  });
  for (auto _ : state) {
    std::unique_lock lock(m);
    turn = 1;
    cv.notify_one();
    cv.wait(lock, [&] { return turn == 0; });
  }
  {
    std::lock_guard lock(m);
    stop = true;
  }
  cv.notify_one();
  partner.join();
  state.SetItemsProcessed(2 * state.iterations());
}
// Real time: the benchmark thread sleeps through half of each round trip.
BENCHMARK(BM_Thread_PingPong)->UseRealTime();

// ---- a million live greenlets -------------------------------------------------------------------

// 1,000,000 greenlets on 16 KiB stacks. Each greenlet is started and left suspended in its first switch back, as a blocked task would
// be. The time measured is creation plus that first switch; destruction (an unwind each) is
// timed apart as destroy_ns.
void BM_Greenlet_Million(benchmark::State& state) {
  constexpr std::size_t n = 1'000'000;
  constexpr std::size_t stack_size = 16 * 1024;
  for (auto _ : state) {
    gr::greenlet* main = gr::greenlet::current();
    std::vector<std::unique_ptr<gr::greenlet>> live;
    live.reserve(n);
    std::size_t guarded = 0, slab = 0;
    const std::size_t rss_before = gr_bench::resident_bytes();
    std::size_t rss_at_first_slab = 0;
    try {
      for (std::size_t i = 0; i < n; ++i) {
        auto g = std::make_unique<gr::greenlet>(
            [main](void* arg) -> void* { return main->switch_to(arg); }, nullptr, stack_size);
        if (g->stack_region().origin == gr::stack::kind::guarded) {
          ++guarded;
        } else {
          if (slab++ == 0) rss_at_first_slab = gr_bench::resident_bytes();
        }
        g->switch_to();
        live.push_back(std::move(g));
      }
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
      std::fprintf(stderr, "BM_Greenlet_Million: failed after %zu greenlets: %s\n", live.size(), e.what());
    }
    const std::size_t rss_after = gr_bench::resident_bytes();
    const gr::stack_stats stats = gr::stack_statistics();

    state.PauseTiming();
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t made = live.size();
    live.clear();
    const auto t1 = std::chrono::steady_clock::now();
    state.ResumeTiming();

    if (made == 0) continue;
    const double kib = 1024.0;
    if (rss_at_first_slab == 0) rss_at_first_slab = rss_after;
    state.counters["greenlets"] = static_cast<double>(made);
    state.counters["KiB_per_greenlet"] = static_cast<double>(rss_after - rss_before) / kib / static_cast<double>(made);
    state.counters["KiB_per_guarded"] =
        guarded ? static_cast<double>(rss_at_first_slab - rss_before) / kib / static_cast<double>(guarded) : 0;
    state.counters["KiB_per_slab"] =
        slab ? static_cast<double>(rss_after - rss_at_first_slab) / kib / static_cast<double>(slab) : 0;
    state.counters["guarded"] = static_cast<double>(guarded);
    state.counters["slab"] = static_cast<double>(slab);
    state.counters["guard_budget"] = static_cast<double>(stats.guard_budget);
    state.counters["slab_slots"] = static_cast<double>(stats.unguarded_slots);
    state.counters["destroy_ns"] =
        static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) /
        static_cast<double>(made);
    state.SetItemsProcessed(static_cast<std::int64_t>(made));
  }
}
BENCHMARK(BM_Greenlet_Million)
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
