// gr/sched/semaphore.hpp: a counting semaphore for tasks.
//
//   gr::semaphore slots{4};            // at most four downloads at once
//   slots.acquire();
//   download(url);
//   slots.release();
//
// FIFO-fair: release() hands a permit straight to the longest-waiting task, and acquire() never
// takes a permit while others wait for one. Owned by its creator; use it only on the scheduler's
// thread.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/wait.hpp>
#include <gr/sched/wait_queue.hpp>

#include <chrono>
#include <cstddef>
#include <limits>
#include <string>

namespace gr {

class semaphore {
public:
  // semaphore: `initial` permits (>= 0, else gr::error).
  explicit semaphore(std::ptrdiff_t initial, std::string name = {});
  semaphore(const semaphore&) = delete;
  semaphore& operator=(const semaphore&) = delete;
  // ~semaphore: destroying one that tasks wait on is a bug; it aborts naming it.
  ~semaphore();

  // acquire: takes a permit, parking until one is handed over. Throws gr::task_cancelled,
  // gr::deadlock_error (main task) if no permit can ever come.
  void acquire();
  // try_acquire: takes a permit if one is free and nobody waits; never blocks.
  bool try_acquire() noexcept;
  // try_acquire_until / try_acquire_for: acquire() with a deadline; false when it passes first.
  bool try_acquire_until(time_point deadline);
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
    return try_acquire_until(detail::deadline_in(d));
  }
  // release: returns `n` permits (n >= 0, else gr::error), handing them to waiters first. Throws
  // gr::error, changing nothing, if the count would pass max().
  void release(std::ptrdiff_t n = 1);

  std::ptrdiff_t available() const noexcept { return count_; }
  static constexpr std::ptrdiff_t max() noexcept { return std::numeric_limits<std::ptrdiff_t>::max(); }
  const std::string& name() const noexcept { return name_; }

private:
  bool acquire_until(time_point deadline);

  std::ptrdiff_t count_;
  detail::wait_queue waiters_;
  std::string name_;
};

}  // namespace gr
