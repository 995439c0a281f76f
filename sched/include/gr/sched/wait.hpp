// gr/sched/wait.hpp: the narrow verbs the layers above block and wake tasks with (Go's
// gopark/goready, libdill's waitfor/trigger). channel/ is written with these alone; it never
// switches contexts itself.
//
//   if (auto c = detail::check_cancelled(); ...)     // every blocking call starts here
//   detail::wait_node me{detail::current_task()};
//   queue.push_back(me);
//   detail::wake_reason why = detail::park_until(reason, deadline);
//   if (!me.signaled) { queue.remove(me); detail::raise_if_interrupted(why); /* timeout */ }
//
// All of these run on the scheduler's thread, from a task (the main task counts).
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/detail/debug_flag.hpp>
#include <gr/sched/detail/ready_ring.hpp>
#include <gr/sched/detail/task_ctl.hpp>
#include <gr/sched/wait_queue.hpp>

#include <string>

namespace gr::detail {

// sched_head: the part of a thread's scheduler state that inline code reads (the rest is private
// to sched/). tls_sched is null until the thread first uses the scheduler.
struct sched_head {
  task_ctl* current = nullptr;  // the task on the CPU
  ready_ring rr;                // the built-in ready queue (round_robin's order)
  // plain_ready: rr is the ready queue (no custom policy is set) and the scheduler is not
  // unwinding its tasks, so wake() may queue a task on rr itself. Kept by set_policy and
  // shutdown, the only writers of what it sums up.
  bool plain_ready = true;
};
extern constinit thread_local sched_head* tls_sched __attribute__((tls_model("initial-exec")));
task_ctl* current_task_slow();

// current_task: the running task of this thread's scheduler (the main task outside any spawn).
// Inline: every channel operation asks.
inline task_ctl* current_task() {
  if (sched_head* h = tls_sched) [[likely]]
    return h->current;
  return current_task_slow();
}

// check_cancelled: throws gr::task_cancelled if the current task was cancelled. Every blocking
// call starts with it, so cancellation is sticky even for calls that would not have to wait.
void check_cancelled();

// park: blocks the current task until someone calls wake() on it; returns why it woke.
// Returns wake_reason::cancelled at once, without parking, if the task was cancelled.
// The main task may get wake_reason::deadlock when nothing else can ever run.
wake_reason park(const wait_reason& why);

// park_uninterruptible: park() that waits even in a cancelled task (a cancel still wakes it,
// with wake_reason::cancelled, and the caller parks again). For the few waits that must finish,
// such as re-locking the mutex when a condition_variable wait ends.
wake_reason park_uninterruptible(const wait_reason& why);

// park_until: park() with a deadline; wake_reason::timeout when it passes first.
wake_reason park_until(const wait_reason& why, time_point deadline);

// wake: makes a parked task runnable (at the tail of the ready queue) with `why`. Does nothing if
// the task is not parked (already woken by a timeout or a cancel: the first reason wins). `t` is
// a task of this thread's scheduler.
// Inline, as every channel hand-over and unlock wakes a task: the usual case (no timer armed,
// the built-in queue, no debugging hook) is a few stores; wake_slow() does the rest.
// A task of another thread's scheduler (or a waker on a thread with none) is a misuse that has
// already touched the primitive from two threads: foreign_task() aborts with a message naming
// the task and what it waits on, rather than queue it on the wrong thread's scheduler.
void wake_slow(task_ctl* t, wake_reason why) noexcept;
[[noreturn]] void foreign_task(const task_ctl* t, const char* op) noexcept;
inline void wake(task_ctl* t, wake_reason why = wake_reason::signaled) noexcept {
  if (t->state != task_state::blocked) return;
  sched_head* h = tls_sched;
  // sched_state's sched_head is its first and only base: the same address.
  if (static_cast<const void*>(t->sched) != static_cast<const void*>(h)) [[unlikely]]
    foreign_task(t, "woken (by a channel, mutex, condition_variable, semaphore or wait_group it waits on)");
  sched_head& s = *h;
  if (t->timer_index == task_ctl::npos && s.plain_ready && !debug_hooked()) [[likely]] {
    t->wake = why;
    t->state = task_state::runnable;
    s.rr.push(t);
    return;
  }
  wake_slow(t, why);
}

// raise_if_interrupted: throws gr::task_cancelled for `cancelled`, gr::deadlock_error (with the
// report) for `deadlock`; returns for any other reason.
void raise_if_interrupted(wake_reason why);

// describe_waiting_task: "task #3 'worker' (spawned at main.cpp:12), which waits to recv on
// channel 'jobs'": a task named in the message of a primitive destroyed while tasks wait on it.
std::string describe_waiting_task(const task_ctl& t);
// task_label: how messages name a task: "task #3 'worker'", "task #3" unnamed, "the main task".
std::string task_label(const task_ctl& t);

// shutting_down: this thread's scheduler is unwinding its unfinished tasks at thread exit (or, in
// the main thread, has left them as they are as the process exits). Then a
// primitive destroyed while tasks still wait on it just forgets them (they are being unwound too)
// instead of reporting a bug.
bool shutting_down() noexcept;

// now: the time on the current scheduler's clock.
time_point sched_now();

// deadline_in: the deadline of a *_for call: `d` from now on the scheduler's clock, saturated
// (see deadline_after: hours::max() waits forever, a negative duration is due at once).
template <class Rep, class Period>
time_point deadline_in(std::chrono::duration<Rep, Period> d) {
  return deadline_after(sched_now(), d);
}

}  // namespace gr::detail
