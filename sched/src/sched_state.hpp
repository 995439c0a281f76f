// The scheduler's state: one per thread. Private to sched/.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/detail/task_ctl.hpp>
#include <gr/sched/ready_policy.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/wait.hpp>

#include <memory>
#include <string>
#include <vector>

namespace gr::detail {

// stopped_clock: time frozen at one reading. The clock of a scheduler that is shutting down: the
// program's clock may be gone by then (a local of main() is destroyed before the thread's
// scheduler), so the shutdown's report and whatever its unwinding tasks ask read this instead.
struct stopped_clock final : gr::clock {
  time_point at{};
  time_point now() noexcept override { return at; }
  bool wait_until(time_point) override { return false; }
};

// sched_head (wait.hpp) holds what inline readers need: `current`, the task on the CPU, and the
// built-in ready ring with its plain_ready flag (the inline wake).
struct sched_state : sched_head {
  sched_state();

  scheduler facade{this};
  task_ctl main;                      // the thread's root greenlet as a task (id 0)
  task_ctl* all_tail = nullptr;       // every task, main first, in spawn order (task_ctl::all_*)
  std::unique_ptr<ready_policy> custom;  // a user policy, when set
  std::vector<task_ctl*> timers;      // min-heap on (deadline, timer order); task_ctl::timer_index
  std::uint64_t timer_order = 0;      // ties between equal deadlines go first-armed first
  steady_clock_source steady;
  stopped_clock stopped;              // clk from shutdown() on
  gr::clock* clk = &steady;
  time_point last_now{};              // the clock's last reading (for cheap approximate ages)
  task_ctl* zombie = nullptr;         // a finished task whose stack the next task frees
  std::uint64_t next_id = 1;
  std::size_t live = 0;               // spawned tasks not done
  bool main_in_run = false;           // the main task is parked in run() until live == 0
  bool shutting_down = false;
  bool left_at_exit = false;          // leave_at_exit() ran: a join unwinds the task it waits for
  unsigned tick = 0;                  // yields since the last timer check
  std::string deadlock_report;
  scheduler::unjoined_handler unjoined;
  sched_state* debug_next = nullptr;  // the process's schedulers (gr_debug_schedulers), for debuggers
  long os_thread = 0;                 // the kernel's id of this scheduler's thread (gettid)

  // The ready queue: round_robin inline unless a custom policy is set.
  void push_ready(task_ctl* t) noexcept {
    t->state = task_state::runnable;
    if (!custom) [[likely]]
      rr.push(t);
    else
      custom->push(t);
  }
  task_ctl* pop_ready() noexcept { return !custom ? rr.pop() : custom->pop(); }
  // rotate_ready: a yield's pop_ready() then push_ready(self); null (and self not queued) if
  // nothing else is runnable.
  task_ctl* rotate_ready(task_ctl* self) noexcept {
    if (!custom) [[likely]] {
      task_ctl* next = rr.rotate(self);
      if (next) self->state = task_state::runnable;
      return next;
    }
    task_ctl* next = custom->pop();
    if (next) push_ready(self);
    return next;
  }
  bool ready_empty() const noexcept { return !custom ? rr.empty() : custom->empty(); }
};

// this_sched: this thread's scheduler; one initial-exec TLS read on the hot path, the first-use
// setup out of line.
sched_state& init_this_sched();
inline sched_state& this_sched() {
  if (sched_head* h = tls_sched) [[likely]]
    return static_cast<sched_state&>(*h);  // every sched_head is a sched_state's
  return init_this_sched();
}
task_info info_of(const task_ctl& t);

}  // namespace gr::detail
