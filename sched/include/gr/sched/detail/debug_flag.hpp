// gr/sched/detail/debug_flag.hpp: the process-wide word that says whether any debugging hook wants
// to see scheduler events. Internal to gr: the scheduler's hot paths, and the inline wake() of the
// layers above (wait.hpp), test it before doing anything but their plain work.
#pragma once

#include <atomic>

namespace gr::detail {

// g_debug: zero unless a trace hook is installed or a dump was requested by signal (the bits are
// in sched/src/debug_hooks.hpp), so a hot path pays one relaxed load and an untaken branch.
// Default visibility: code inlined into the program (wake(), the channel templates) reads it too,
// and in a position-independent executable the compiler reaches it PC-relative all the same.
extern std::atomic<unsigned> g_debug;

// debug_hooked: does any hook want events now? Always false when built with -DGR_NO_TRACE, which
// therefore has to be given to gr and to the code that includes its headers alike (inline code
// such as wake() tests it).
inline bool debug_hooked() noexcept {
#ifdef GR_NO_TRACE
  return false;
#else
  return g_debug.load(std::memory_order_relaxed) != 0;
#endif
}

}  // namespace gr::detail
