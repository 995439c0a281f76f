// gr/sched/scheduler.hpp: the per-thread scheduler that runs tasks.
//
//   int main() {
//     gr::spawn([] { ... }).detach();
//     gr::scheduler::current().run();       // until every task has finished
//   }
//
//   // a game loop: one frame per tick, timers in frame time
//   gr::manual_clock frame_time;
//   auto& s = gr::scheduler::current();
//   s.set_clock(frame_time);
//   while (playing) { frame_time.advance(16ms); s.run_once(); render(); }
//
// One scheduler per thread, made on first use. The thread's root greenlet is its main task: code
// in main() may join, sleep, lock or wait on a channel, and other tasks run meanwhile. Switches go
// task to task directly (no scheduler greenlet in between). When every task is blocked and
// nothing can wake one, the main task's blocking call (or run()) throws gr::deadlock_error naming
// every blocked task and what it waits on. Owned by its thread; use it only from that thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/ready_policy.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace gr {

namespace detail {
struct sched_state;
}

// task_info: one task as a snapshot sees it.
struct task_info {
  std::uint64_t id = 0;
  std::string name;             // may be empty
  std::string state;            // "running", "runnable", "blocked", "done"
  std::string waiting;          // what a blocked task waits on, e.g. "recv on channel 'jobs'"
  bool has_deadline = false;    // blocked with a timer armed
  time_point deadline{};
  std::string spawned_at;       // "file:line" ("" for the main task)
  time_point created{};         // clock time when spawned (approximate: the scheduler's last reading)
  std::uint64_t switches = 0;   // times switched in
  bool is_main = false;
  bool cancelled = false;
  const void* stack_base = nullptr;  // the task's stack [stack_base, stack_base + stack_size)
  std::size_t stack_size = 0;
  std::size_t stack_used = 0;        // bytes in use now (from its saved stack pointer)
  std::size_t stack_peak = 0;        // resident bytes of its stack (mincore): the deepest use
  duration age{};                    // clock time since it was spawned (approximate)
  const void* greenlet = nullptr;    // its greenlet (for debuggers)
};

class scheduler {
public:
  // current: this thread's scheduler, made on first use.
  static scheduler& current();

  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // run: runs tasks until every spawned task has finished. Call it from the main task. Throws
  // gr::deadlock_error if tasks remain that can never run again.
  void run();

  // run_once: one frame. Runs each task that is runnable when it starts at most once (a task
  // spawned or woken during the frame runs in the next one), fires due timers first, and never
  // blocks the thread. Returns whether any spawned task is still alive. Call it from the main task.
  bool run_once();

  // run_for: runs frames until `budget` of clock time is spent or nothing is runnable, waiting for
  // timers due within the budget (on clocks that can wait). Returns whether tasks remain. A budget
  // of zero or less (a frame that overran) still runs one frame, so tasks always make progress;
  // duration::max() runs until nothing is runnable. On a passive clock (gr::clock::passive(): a
  // manual_clock, which only the program advances) a finite budget also stops after a frame in
  // which the clock did not move: nothing would ever spend it. (A virtual_clock moves when every
  // task waits, so tasks that keep yielding run on, as in run().)
  bool run_for(duration budget);

  // set_clock: times sleeps and deadlines by `c` from now on (see gr::clock). `c` must outlive its
  // use; the scheduler's own end at thread exit does not read it (a clock that is a local of
  // main() is gone by then). reset_clock: back to std::chrono::steady_clock. Deadlines are points
  // in a clock's time, so both throw gr::error, naming a waiting task, while any task sleeps or
  // waits with a deadline (on another clock it would fire at once or never): change clocks before
  // tasks sleep.
  void set_clock(gr::clock& c);
  void reset_clock();
  gr::clock& clock() const noexcept;
  time_point now() const noexcept;

  // set_policy: replaces the ready-queue policy (see gr::ready_policy); the runnable tasks move
  // over in their current order.
  void set_policy(std::unique_ptr<ready_policy> p);

  // task_count: spawned tasks not finished yet (the main task is not counted).
  std::size_t task_count() const noexcept;

  // snapshot: every task of this scheduler, the main task first, then in spawn order.
  std::vector<task_info> snapshot() const;

  // describe: one line for a task, as deadlock reports and dumps print it.
  static std::string describe(const task_info& t);

  // set_unjoined_handler: called when a task ends by an exception that no join() will take (it was
  // detached, or its handle dropped). The default prints
  //   gr: task 'name' (#id, spawned at file:line) ended with an exception nobody joined: <type>: what()
  // on stderr. Pass an empty function to restore the default.
  using unjoined_handler = std::function<void(const task_info&, std::exception_ptr)>;
  void set_unjoined_handler(unjoined_handler h);

private:
  friend struct detail::sched_state;
  explicit scheduler(detail::sched_state* s) noexcept : state_(s) {}
  detail::sched_state* state_;
};

}  // namespace gr
