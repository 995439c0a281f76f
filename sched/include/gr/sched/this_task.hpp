// gr/sched/this_task.hpp: what a task does to itself: yield, sleep, ask the time.
//
//   while (!done) { step(); gr::yield(); }          // let every other ready task run once
//   gr::sleep_for(250ms);                           // on the scheduler's clock
//
// Call these from a task (the main task counts) on the scheduler's thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/wait.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace gr {

// yield: puts the current task behind every other runnable task and runs the next one; returns
// at once if no other task is runnable. A cancellation point: in a cancelled task it raises
// gr::task_cancelled instead (so a task that waits frames with yield() stops when cancelled; a
// task cancelled while it waits in the ready queue returns from that yield and raises at its next
// one).
void yield();

// sleep_until: blocks the current task until the scheduler's clock reaches `deadline` (returns at
// once if it has). Raises gr::task_cancelled if the task is or gets cancelled.
void sleep_until(time_point deadline);

// sleep_for: See sleep_until().
template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d) {
  sleep_until(detail::deadline_in(d));
}

// now: the time on this thread's scheduler's clock (see scheduler::set_clock).
inline time_point now() { return detail::sched_now(); }

namespace this_task {
// id: the current task's id (0 for the main task). name: its name.
std::uint64_t id();
const std::string& name();
// cancelled: whether the current task has been cancelled (its blocking calls raise
// gr::task_cancelled); lets a compute loop that never blocks stop early.
bool cancelled();
}  // namespace this_task

}  // namespace gr
