// gr/sched/condition_variable.hpp: a condition variable for tasks and gr::mutex.
//
//   gr::mutex m;
//   gr::condition_variable cv;
//   std::unique_lock lock(m);
//   cv.wait(lock, [&] { return !queue.empty(); });   // parks the task, not the thread
//
// Waiters are woken in FIFO order. Every wait returns with the mutex locked again, also when it
// raises gr::task_cancelled or gr::deadlock_error, with one exception: a deadlock while taking the
// mutex back (its owning task can never release it) raises gr::deadlock_error with `lock` no
// longer owning the mutex (lock.owns_lock() is false). There are no spurious wake-ups, but use
// the predicate forms anyway: another task may run between the notify and the wake-up.
// Owned by its creator; use it only on the scheduler's thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/wait_queue.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>

namespace gr {

class condition_variable {
public:
  explicit condition_variable(std::string name = {}) : name_(std::move(name)) {}
  condition_variable(const condition_variable&) = delete;
  condition_variable& operator=(const condition_variable&) = delete;
  // ~condition_variable: destroying one that tasks wait on is a bug; it aborts naming it.
  ~condition_variable();

  // wait: unlocks `lock`, parks until notified, locks again. Throws gr::error if `lock` does not
  // hold its mutex for the calling task; gr::task_cancelled / gr::deadlock_error as mutex::lock.
  void wait(std::unique_lock<mutex>& lock);
  template <class Pred>
  void wait(std::unique_lock<mutex>& lock, Pred pred) {
    while (!pred()) wait(lock);
  }

  // wait_until: wait() with a deadline; std::cv_status::timeout when it passes first.
  std::cv_status wait_until(std::unique_lock<mutex>& lock, time_point deadline);
  // wait_until with a predicate: returns pred() (false: timed out and the predicate still false).
  template <class Pred>
  bool wait_until(std::unique_lock<mutex>& lock, time_point deadline, Pred pred) {
    while (!pred())
      if (wait_until(lock, deadline) == std::cv_status::timeout) return pred();
    return true;
  }
  // wait_for: See wait_until().
  template <class Rep, class Period>
  std::cv_status wait_for(std::unique_lock<mutex>& lock, std::chrono::duration<Rep, Period> d) {
    return wait_until(lock, detail::deadline_in(d));
  }
  template <class Rep, class Period, class Pred>
  bool wait_for(std::unique_lock<mutex>& lock, std::chrono::duration<Rep, Period> d, Pred pred) {
    return wait_until(lock, detail::deadline_in(d), std::move(pred));
  }

  // notify_one / notify_all: wake the first waiter / every waiter. Never block.
  void notify_one() noexcept;
  void notify_all() noexcept;

  const std::string& name() const noexcept { return name_; }

private:
  detail::wait_queue waiters_;
  std::string name_;
};

}  // namespace gr
