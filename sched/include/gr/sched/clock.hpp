// gr/sched/clock.hpp: where the scheduler's timers get their time.
//
//   gr::virtual_clock vc;                       // deterministic time for tests and simulations
//   gr::scheduler::current().set_clock(vc);
//   gr::sleep_for(5s);                          // returns at once in wall time; vc.now() moved 5s
//
// The scheduler asks its clock for now() when it checks timers, and calls wait_until(tp) when
// nothing is ready and the earliest timer is due at tp. Three clocks come with gr:
//   - steady_clock_source (the default): std::chrono::steady_clock; wait_until sleeps the thread.
//   - virtual_clock: starts at time_point{} and jumps straight to the next deadline when every
//     task is waiting on a timer, so timed programs run instantly and deterministically.
//   - manual_clock: frame time for game loops; it moves only when the program calls advance() or
//     set(), and wait_until() returns false (the scheduler never blocks on it).
// A clock is owned by the program and must outlive its use by the scheduler. Touch it only from
// the scheduler's thread.
//
// Every *_for form (sleep_for, join_for, recv_for, wait_for, timeout_case, ...) takes any
// std::chrono duration and adds it to the clock's now() without overflow: a duration too long
// to add (hours::max(), "forever") means no deadline at all, and zero or a negative one is due at
// once (a timed wait then reports a timeout unless it can complete without waiting).
#pragma once

#include <chrono>
#include <ratio>

namespace gr {

using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

namespace detail {
// deadline_after: the deadline `d` after `now`, as every *_for form and run_for compute it
// (rounded up to the clock's ticks), saturated rather than overflowed: a duration too long to
// add, such as std::chrono::hours::max() for "wait forever", gives time_point::max() (no
// deadline), and one that is zero or negative gives `now` (due at once). The comparison is in
// floating point, where neither unit's range can overflow, and a deadline more than half the
// clock's remaining range away (over a century on steady_clock) counts as none, so rounding near
// the limit cannot overflow the final conversion either. A unit that is no whole number of
// clock ticks (1/60 s, 1/3 ns) converts by multiplying by up to `den` before dividing, so its
// limit is `den` times nearer.
template <class Rep, class Period>
time_point deadline_after(time_point now, std::chrono::duration<Rep, Period> d) noexcept {
  using seconds = std::chrono::duration<double>;
  constexpr auto den = static_cast<double>(std::ratio_divide<Period, duration::period>::den);
  if (!(d > decltype(d)::zero())) return now;  // NaN too
  const duration left = now.time_since_epoch() < duration::zero() ? duration::max() : time_point::max() - now;
  if (!(seconds(d) < seconds(left) / (2 * den))) return time_point::max();
  return now + std::chrono::ceil<duration>(d);
}
}  // namespace detail

class clock {
public:
  virtual ~clock() = default;
  // now: the current time on this clock.
  virtual time_point now() noexcept = 0;
  // wait_until: nothing is ready and the earliest timer is due at `tp`: block the thread, or move
  // virtual time, until then. Returns false if the clock cannot get there by itself. It may return
  // true early (the steady clock does on a signal): the scheduler then checks its timers and
  // waits again.
  virtual bool wait_until(time_point tp) = 0;
  // passive: whether the clock's time moves only when the program moves it (manual_clock).
  // scheduler::run_for() then stops after a frame in which it did not move, instead of running
  // frames for a budget that nothing spends.
  virtual bool passive() const noexcept { return false; }
};

class steady_clock_source final : public clock {
public:
  time_point now() noexcept override { return std::chrono::steady_clock::now(); }
  bool wait_until(time_point tp) override;
};

class virtual_clock final : public clock {
public:
  explicit virtual_clock(time_point start = time_point{}) noexcept : now_(start) {}
  time_point now() noexcept override { return now_; }
  bool wait_until(time_point tp) override {
    if (tp > now_) now_ = tp;
    return true;
  }
  void advance(duration d) noexcept { now_ += d; }

private:
  time_point now_;
};

class manual_clock final : public clock {
public:
  explicit manual_clock(time_point start = time_point{}) noexcept : now_(start) {}
  time_point now() noexcept override { return now_; }
  bool wait_until(time_point) override { return false; }
  bool passive() const noexcept override { return true; }
  void advance(duration d) noexcept { now_ += d; }
  void set(time_point tp) noexcept { now_ = tp; }

private:
  time_point now_;
};

}  // namespace gr
