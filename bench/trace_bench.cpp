// What tracing costs, on BM_Sched_Yield's loop (two tasks yielding to each other; item = one
// task-to-task switch):
//   BM_Sched_Yield_TraceHook     a trivial trace hook installed (it counts events): the price of
//                                building a trace_event and calling the hook on every switch
//   BM_Sched_Yield_ChromeTrace   gr::start_chrome_trace recording (to /dev/null): the Chrome Trace
//                                writer's cost per switch (a fixed 200,000 iterations: it keeps
//                                every event in memory until stop_chrome_trace writes them)
// With no hook set, a switch pays one relaxed load of a flag and an untaken branch; compare with
// BM_Sched_Yield, and build with -DGR_NO_TRACE to remove even that (docs/debugging.md has the
// figures).
#include <benchmark/benchmark.h>

#include "bench_util.hpp"

#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/trace.hpp>

#include <cstdint>

namespace {


void count_event(const gr::trace_event&, void* user) { ++*static_cast<std::uint64_t*>(user); }

void BM_Sched_Yield_TraceHook(benchmark::State& state) {
  std::uint64_t events = 0;
  gr::trace_hook old = gr::set_trace_hook(&count_event, &events);
  gr_bench::yield_ping_pong(state);
  gr::set_trace_hook(old);
  state.counters["events_per_switch"] =
      static_cast<double>(events) / static_cast<double>(2 * state.iterations());
}
BENCHMARK(BM_Sched_Yield_TraceHook);

void BM_Sched_Yield_ChromeTrace(benchmark::State& state) {
  gr::start_chrome_trace("/dev/null");
  gr_bench::yield_ping_pong(state);
  gr::stop_chrome_trace();  // after the timed loop: writing the file is not measured
}
BENCHMARK(BM_Sched_Yield_ChromeTrace)->Iterations(200000);

}  // namespace
