// The scheduler's debugging hooks: one global flag word, read on each switch, park and wake.
// Private to sched/.
//
// g_debug is zero unless a trace hook is installed or a dump was requested by signal, so the hot
// paths pay one relaxed load and an untaken branch. -DGR_NO_TRACE compiles the checks out
// (debug_hooked() in gr/sched/detail/debug_flag.hpp).
#pragma once

#include <gr/sched/detail/debug_flag.hpp>
#include <gr/sched/detail/task_ctl.hpp>
#include <gr/sched/trace.hpp>

#include <cstddef>
#include <exception>

namespace gr::detail {

struct sched_state;

// g_debug's bits (gr/sched/detail/debug_flag.hpp).
inline constexpr unsigned debug_trace = 1;  // a trace hook is installed
inline constexpr unsigned debug_dump = 2;   // a signal asked for a dump at the next event

// debug_event: the slow path: print a requested dump, call the trace hook.
// Never inlined: the flattened park_now would otherwise take in the whole dump formatter, and
// with it a stack frame of some 800 bytes on every parked task's stack. (Not cold: with a trace
// hook set it runs on every switch, and cold code is optimised for size.)
[[gnu::noinline]]
void debug_event(sched_state& s, trace_event::type what, const task_ctl* task, const task_ctl* other,
                 const wait_reason* reason, wake_reason wake, const std::exception_ptr* error) noexcept;

// dump_if_asked: prints the dump a signal asked for (dump_on_signal), if one did: once per
// signal. The scheduler calls it at every event (debug_event), at a yield with nothing else to
// run, and when its idle wait for a timer ends, which a signal cuts short
// (steady_clock_source::wait_until).
void dump_if_asked() noexcept;

// internal_threads: how many threads gr itself runs in this process (the trace's signal
// messenger), which a report counting the program's threads leaves out.
std::size_t internal_threads() noexcept;

// register_scheduler / unregister_scheduler: the process-wide list debuggers read
// (gr_debug_schedulers), so `gr tasks` works from memory alone, on a core file too.
void register_scheduler(sched_state& s) noexcept;
void unregister_scheduler(sched_state& s) noexcept;
// chrome_trace_from_env: starts a Chrome trace when GR_TRACE names a file (once per process).
void chrome_trace_from_env() noexcept;

}  // namespace gr::detail

// GR_DEBUG_EVENT: debug_event() if a hook wants it (debug_hooked(), which -DGR_NO_TRACE makes a
// constant false, so the call compiles out).
#define GR_DEBUG_EVENT(s, ...)                        \
  do {                                                \
    if (::gr::detail::debug_hooked()) [[unlikely]]    \
      ::gr::detail::debug_event(s, __VA_ARGS__);      \
  } while (false)
