// gr/sched/mutex.hpp: a mutex for tasks: a task that finds it locked parks; the thread runs on.
//
//   gr::mutex m{"accounts"};
//   {
//     std::lock_guard lock(m);      // or std::unique_lock, std::scoped_lock
//     balance += amount;            // may block inside: other tasks run, none enters here
//   }
//
// FIFO-fair: unlock() hands the lock straight to the longest-waiting task, so nobody starves and
// no task can barge in front of the queue. Not recursive. The owner is a task, not a thread.
// Owned by its creator; use it only on the scheduler's thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/wait.hpp>
#include <gr/sched/wait_queue.hpp>

#include <chrono>
#include <string>

namespace gr {

class mutex {
public:
  explicit mutex(std::string name = {}) : name_(std::move(name)) {}
  mutex(const mutex&) = delete;
  mutex& operator=(const mutex&) = delete;
  // ~mutex: destroying a mutex that is locked or waited on is a bug; it aborts naming the mutex.
  // A task that ends holding one aborts too, naming the task (only the owner may unlock it).
  ~mutex();

  // lock: takes the lock, parking the task until it is handed over. Throws gr::error if the task
  // already owns it, gr::task_cancelled if the task is (or gets) cancelled, gr::deadlock_error
  // (main task) if the owner can never unlock it.
  void lock();
  // try_lock: takes the lock if it is free and nobody waits for it; never blocks.
  bool try_lock();
  // try_lock_until / try_lock_for: lock() with a deadline; false when it passes first.
  bool try_lock_until(time_point deadline);
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return try_lock_until(detail::deadline_in(d));
  }
  // unlock: releases the lock, handing it to the first waiting task. Throws gr::error if the
  // calling task does not own it.
  void unlock();

  bool locked() const noexcept { return owner_ != nullptr; }
  const std::string& name() const noexcept { return name_; }

private:
  friend class condition_variable;
  bool lock_until(time_point deadline, bool interruptible);
  // describe_lock_wait: what a task waiting for the mutex at `self` waits on, for reports:
  // "mutex 'name' (held by task #3 'writer')".
  static std::string describe_lock_wait(const void* self);

  detail::task_ctl* owner_ = nullptr;
  detail::wait_queue waiters_;
  std::string name_;
};

}  // namespace gr
