// Helpers shared by gr_bench's files.
#pragma once

#include <benchmark/benchmark.h>

#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <cstddef>
#include <cstdio>

#include <unistd.h>

namespace gr_bench {

// resident_bytes: the process's resident memory now (from /proc/self/statm), 0 if unreadable.
inline std::size_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// yield_ping_pong: the main task and one partner task yield to each other; one item per switch.
// BM_Sched_Yield, and the trace benchmarks that measure the same loop with a hook set.
inline void yield_ping_pong(benchmark::State& state) {
  bool stop = false;
  auto partner = gr::spawn([&] {
    while (!stop) gr::yield();
  });
  gr::yield();  // start it: the first switch in makes its stack, not part of the steady state
  for (auto _ : state) gr::yield();
  stop = true;
  partner.join();
  state.SetItemsProcessed(2 * state.iterations());  // main -> partner, partner -> main
}

}  // namespace gr_bench
