// Test support for the layers with a scheduler (sched, channel): a clock installed for the
// duration of a scope.
#pragma once

#include <gr/sched/clock.hpp>
#include <gr/sched/scheduler.hpp>

namespace gr_test {

// use_clock: the scheduler times sleeps and deadlines by its own Clock until the guard goes out of
// scope, then goes back to the steady clock (a clock left installed would dangle into the next
// test).
template <class Clock>
class use_clock {
public:
  use_clock() { gr::scheduler::current().set_clock(clock_); }
  ~use_clock() { gr::scheduler::current().reset_clock(); }
  use_clock(const use_clock&) = delete;
  use_clock& operator=(const use_clock&) = delete;

  Clock& operator*() noexcept { return clock_; }
  Clock* operator->() noexcept { return &clock_; }
  // elapsed: time on the clock since it started (it starts at time_point{}).
  gr::duration elapsed() noexcept { return clock_.now() - gr::time_point{}; }

private:
  Clock clock_;
};

}  // namespace gr_test
