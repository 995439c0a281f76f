// gr/sched/detail/debug_flag.hpp: the process-wide word that says whether any debugging hook wants
// to see scheduler events. Internal to gr: the scheduler's hot paths, and the inline wake() of the
// layers above (wait.hpp), test it before doing anything but their plain work.
#pragma once

#include <atomic>

namespace gr::detail {

// g_debug: zero unless a trace hook is installed or a dump was requested by signal (the bits are
// in sched/src/debug_hooks.hpp), so a hot path pays one relaxed load and an untaken branch.
// Hidden: the static libraries and the program they are linked into reach it PC-relative, not
// through the GOT.
extern std::atomic<unsigned> g_debug __attribute__((visibility("hidden")));

// debug_hooked: does any hook want events now? Always false when built with -DGR_NO_TRACE.
inline bool debug_hooked() noexcept {
#ifdef GR_NO_TRACE
  return false;
#else
  return g_debug.load(std::memory_order_relaxed) != 0;
#endif
}

}  // namespace gr::detail
