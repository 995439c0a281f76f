// Test support for the layers with a scheduler (sched, channel): a clock installed for the
// duration of a scope.
#pragma once

#include <doctest/doctest.h>

#include <gr/runtime/error.hpp>
#include <gr/sched/clock.hpp>
#include <gr/sched/scheduler.hpp>

namespace gr_test {

// use_clock: the scheduler times sleeps and deadlines by its own Clock until the guard goes out of
// scope, then goes back to the steady clock (a clock left installed would dangle into the next
// test). If the test ends with tasks still waiting on timers (a failed check left them),
// reset_clock() refuses: the test fails here, and the clock is leaked rather than destroyed, so
// what follows finds it installed instead of dangling.
template <class Clock>
class use_clock {
public:
  use_clock() : clock_(new Clock) {
    try {
      gr::scheduler::current().set_clock(*clock_);
    } catch (...) {
      delete clock_;
      throw;
    }
  }
  ~use_clock() {
    try {
      gr::scheduler::current().reset_clock();
    } catch (const gr::error& e) {
      FAIL_CHECK("use_clock could not put the steady clock back: " << e.what());
      return;  // clock_ stays installed, and alive
    }
    delete clock_;
  }
  use_clock(const use_clock&) = delete;
  use_clock& operator=(const use_clock&) = delete;

  Clock& operator*() noexcept { return *clock_; }
  Clock* operator->() noexcept { return clock_; }
  // elapsed: time on the clock since it started (it starts at time_point{}).
  gr::duration elapsed() noexcept { return clock_->now() - gr::time_point{}; }

private:
  Clock* clock_;
};

}  // namespace gr_test
