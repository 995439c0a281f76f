// gr/sched/wait_group.hpp: waits for a collection of tasks to finish (Go's sync.WaitGroup).
//
//   gr::wait_group wg;
//   for (auto& job : jobs) {
//     wg.add(1);
//     gr::spawn([&wg, &job] { run(job); wg.done(); }).detach();
//   }
//   wg.wait();                     // parks until every done() has been called
//
// Owned by its creator; use it only on the scheduler's thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/wait.hpp>
#include <gr/sched/wait_queue.hpp>

#include <chrono>
#include <cstddef>
#include <string>

namespace gr {

class wait_group {
public:
  explicit wait_group(std::ptrdiff_t initial = 0, std::string name = {});
  wait_group(const wait_group&) = delete;
  wait_group& operator=(const wait_group&) = delete;
  // ~wait_group: destroying one that tasks wait on is a bug; it aborts naming it.
  ~wait_group();

  // add: adds `n` (may be negative) to the counter; when it reaches zero every waiter wakes.
  // Throws gr::error if the counter would go below zero.
  void add(std::ptrdiff_t n = 1);
  // done: add(-1).
  void done() { add(-1); }
  // wait: parks until the counter is zero (returns at once if it is). Throws gr::task_cancelled,
  // gr::deadlock_error (main task) if nothing can bring it to zero.
  void wait();
  // wait_until / wait_for: wait() with a deadline; false when it passes first.
  bool wait_until(time_point deadline);
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait_until(detail::deadline_in(d));
  }

  std::ptrdiff_t count() const noexcept { return count_; }
  const std::string& name() const noexcept { return name_; }

private:
  // describe_wait: what a task waiting on the wait_group at `self` waits on, for reports:
  // "wait_group 'workers' (count 2)".
  static std::string describe_wait(const void* self);

  std::ptrdiff_t count_;
  detail::wait_queue waiters_;
  std::string name_;
};

}  // namespace gr
