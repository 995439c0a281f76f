// gr/sched/errors.hpp: what the scheduler raises.
#pragma once

#include <gr/runtime/error.hpp>

namespace gr {

// task_cancelled: raised inside a cancelled task at its current or next blocking call (sleep,
// join, lock, wait, channel operations) or yield(), and at every one after that until the task
// ends (cancellation is sticky, as in libdill and Trio, so cleanup cannot block forever). Not a
// std::exception, so `catch (const std::exception&)` lets it pass. A task that ends by it counts
// as finished normally: join() returns and nothing is reported.
struct task_cancelled {
  const char* what() const noexcept { return "gr::task_cancelled"; }
};

// deadlock_error: thrown from run() or from a blocking call of the main task when every task is
// blocked and nothing can wake one (no ready task, no timer that can fire). what() lists each
// blocked task with its name, what it waits on, and where it was spawned.
class deadlock_error : public error {
public:
  using error::error;
};

}  // namespace gr
