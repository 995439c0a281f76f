// gr/sched/trace.hpp: a hook that sees every scheduling event (python-greenlet's settrace, for
// tasks), and a writer of the Chrome Trace Event format built on it.
//
//   gr::set_trace_hook([](const gr::trace_event& e, void*) {
//     if (e.what == gr::trace_event::type::block) std::printf("#%llu blocks\n", e.task);
//   });
//
//   gr::start_chrome_trace("out.json");    // or run any gr program with GR_TRACE=out.json
//   ...
//   gr::stop_chrome_trace();               // writes the file (also done at exit)
//
// The file opens in Perfetto (ui.perfetto.dev) or chrome://tracing, and tools/trace2html turns it
// into a self-contained HTML timeline: one row per task, running / runnable / blocked spans
// (blocked spans named by what they wait on), and arrows from each waker to the task it woke
// (channel hand-offs, unlocks, joins).
//
// Cost: with no hook set, each switch, park and wake pays one load of a global flag and a branch
// that is never taken. Building with -DGR_NO_TRACE removes even that.
// The hook is process-wide; it is called on the scheduler's thread of the event, so a hook used by
// several threads must be thread-safe. It must not block, switch or call into the scheduler.
#pragma once

#include <gr/sched/detail/task_ctl.hpp>

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

namespace gr {

struct trace_event {
  enum class type : std::uint8_t {
    spawn,    // `task` was spawned by `other`
    switch_,  // `task` stops running and `other` starts (a yield, a block, an exit)
    block,    // `task` parks; `reason` says on what
    wake,     // `task` is made runnable by `other` (its waker: the running task); `wake` says why
              // (for a timeout or the deadlock nobody woke it, and `other` is 0)
    exit,     // `task`'s function is over; `error` is the exception that ended it, if any
    throw_,   // gr::task_cancelled is raised inside `task`
    cancel,   // `other` asked `task` to stop
  };

  type what;
  std::uint64_t task = 0;                         // the task the event is about (0: main)
  std::string_view task_name;                     // may be empty
  std::uint64_t other = 0;
  std::string_view other_name;
  const detail::wait_reason* reason = nullptr;    // block (and wake: what it waited on)
  detail::wake_reason wake = detail::wake_reason::none;
  const std::exception_ptr* error = nullptr;      // exit: non-null when an exception ended it
  const void* scheduler = nullptr;                // identifies the thread's scheduler
};

using trace_hook = void (*)(const trace_event& e, void* user);

// set_trace_hook: installs `hook` (null: removes it) for every thread's scheduler. Returns the
// previous hook.
trace_hook set_trace_hook(trace_hook hook, void* user = nullptr) noexcept;

// describe_wait: "recv on channel 'jobs'" for a wait reason (as deadlock reports print it).
std::string describe_wait(const detail::wait_reason& why);

// start_chrome_trace: records events from now on, to be written to `path` as Chrome Trace Event
// JSON by stop_chrome_trace() or at exit, or when the process dies by a gr fatal error or
// std::terminate (its spans closed at that moment; stderr says where it went), or by SIGINT
// (Ctrl-C), SIGTERM or SIGHUP: while it records, each of these whose action is the default is
// caught, a thread of gr's (started with the first trace) writes the trace, and the signal is sent
// again to end the process as it would have (a second one ends it at once). Replaces the trace
// hook.
// The file is created at once: throws gr::error if it cannot be opened for writing, or if a trace
// is already being recorded.
void start_chrome_trace(const std::string& path);
// stop_chrome_trace: removes the hook, gives the signals back their default action, and writes
// the file. Returns false (and says why on stderr)
// if it cannot be written. No-op when no trace is being recorded.
bool stop_chrome_trace();

}  // namespace gr
