// gr/sched/detail/task_ctl.hpp: a task's control block. Internal to gr (sched and channel).
//
// A spawned task's control block lives in its task_frame at the top of its own stack, so a spawn
// allocates nothing but the (pooled) stack. The main task's lives in the scheduler.
// Owned by its scheduler's thread; never touched from another thread.
#pragma once

#include <gr/greenlet/greenlet.hpp>
#include <gr/runtime/stack.hpp>
#include <gr/sched/clock.hpp>
#include <gr/sched/wait_queue.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <source_location>
#include <string>

namespace gr::detail {

struct sched_state;

// task_state: where the task is. Each value names the structure that holds it.
enum class task_state : std::uint8_t {
  runnable,  // in the ready queue (or handed to a switch that is about to run it)
  running,   // the scheduler's current task: on the CPU
  blocked,   // parked: in some wait_queue and/or the timer heap; only wake() moves it out
  done,      // its function returned or threw; kept until its handle lets go (refs)
};

// wake_reason: why a parked task was made runnable; park() returns it.
enum class wake_reason : std::uint8_t {
  none,
  signaled,   // a waker completed the operation it waited for (or asked it to look again)
  timeout,    // its deadline passed
  cancelled,  // task::cancel() was called
  deadlock,   // (main task only) nothing else can ever run
};

// wait_reason: what a blocked task waits on, for deadlock reports, dumps and traces.
// `verb` and `kind` are static strings ("recv on", "channel"); `name` points at the object's name
// (may be null or empty); `object` is its address. `describe`, when set, replaces kind and name
// with a text built from `object` only when a report asks (a select lists its cases), so parking
// never formats anything.
struct wait_reason {
  const char* verb = nullptr;
  const char* kind = nullptr;
  const void* object = nullptr;
  const std::string* name = nullptr;
  std::string (*describe)(const void* object) = nullptr;
};

// frame_part: what task_ctl::destroy ends: the whole frame (and its stack), or only the callable of
// a task that never started, on its own thread, when its frame outlives the thread (a handle keeps
// it) and is ended later wherever the handle is dropped.
enum class frame_part : unsigned char { all, callable };

// 64-byte aligned, and the switch path's fields (gl through switches) come first: a yield touches
// one cache line of its control block.
struct alignas(64) task_ctl {
  greenlet* gl = nullptr;             // the greenlet it runs on (the thread's root for main)
  sched_state* sched = nullptr;
  task_ctl* next_ready = nullptr;     // the ready policy's intrusive link
  task_ctl* all_prev = nullptr;       // every task of the scheduler, for dumps and reports
  task_ctl* all_next = nullptr;
  task_state state = task_state::runnable;
  wake_reason wake = wake_reason::none;
  bool cancel_requested = false;      // sticky: every blocking call raises task_cancelled
  bool ended_by_cancel = false;
  bool detached = false;
  bool is_main = false;
  bool exception_taken = false;
  std::uint8_t refs = 0;              // the running task holds one, its handle one
  std::uint64_t id = 0;
  std::uint64_t switches = 0;         // times it was switched in
  std::size_t timer_index = npos;     // position in the timer heap, npos when no timer armed
  time_point deadline{};              // valid while a timer is armed
  std::uint64_t timer_seq = 0;        // arm order: equal deadlines fire first-armed first
  time_point created{};
  const wait_reason* waiting = nullptr;  // while blocked: what it waits on (on the parked frame,
                                         // or in the object waited on: a channel's)
  std::uint32_t mutexes_held = 0;     // gr::mutex locks it owns: none may be left when it ends
  std::uint32_t cancel_raises = 0;    // task_cancelled raised in it (a swallowing loop: see
                                      // throw_cancelled)
  wait_queue joiners;                 // tasks blocked in join() on this one
  std::exception_ptr exception;       // what its function threw (not task_cancelled)
  std::source_location spawned_at{};
  std::string name;
  stack memory{};                     // the whole stack, frame included (spawned tasks)
  void (*destroy)(task_ctl*, frame_part) noexcept = nullptr;  // ends the frame and frees the stack

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};

}  // namespace gr::detail
