// Deadlines from durations: every *_for form and run_for add their duration to the clock's now()
// through detail::deadline_after, which saturates: "forever" (hours::max()) is no deadline, never
// an overflow into the past that times out at once.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <chrono>
#include <limits>

using namespace std::chrono_literals;
using gr_test::at;

TEST_SUITE("sched.deadline") {
  TEST_CASE("deadline_after adds a duration rounded up to the clock's ticks and saturates") {
    using gr::detail::deadline_after;
    const gr::time_point now = at(10s);
    const gr::time_point max = gr::time_point::max();
    CHECK(deadline_after(now, 5s) == at(15s));
    CHECK(deadline_after(now, std::chrono::duration<double>(1.5)) == at(11500ms));
    CHECK(deadline_after(now, std::chrono::duration<double, std::pico>(1.0)) == now + 1ns);  // rounded up
    CHECK(deadline_after(now, 0s) == now);
    CHECK(deadline_after(now, -3s) == now);
    CHECK(deadline_after(now, std::chrono::hours::min()) == now);
    CHECK(deadline_after(now, std::chrono::hours::max()) == max);
    CHECK(deadline_after(now, std::chrono::nanoseconds::max()) == max);
    CHECK(deadline_after(now, std::chrono::duration<double>(std::numeric_limits<double>::infinity())) == max);
    CHECK(deadline_after(now, std::chrono::duration<double>(std::numeric_limits<double>::quiet_NaN())) == now);
    // A clock set before its epoch, and one close to its end.
    CHECK(deadline_after(at(-1h), 2h) == at(1h));
    CHECK(deadline_after(at(-1h), std::chrono::hours::max()) == max);
    CHECK(deadline_after(max - 1s, 2s) == max);
    CHECK(deadline_after(max, 1ns) == max);
    // Units that are no whole number of ticks: 1/60 s (a frame) and 1/3 ns. Converting them
    // multiplies before it divides; a century of either must not overflow that.
    using frames = std::chrono::duration<long long, std::ratio<1, 60>>;
    using thirds = std::chrono::duration<long long, std::ratio<1, 3'000'000'000>>;
    CHECK(deadline_after(now, frames(3)) == at(10050ms));
    CHECK(deadline_after(now, thirds(4)) == now + 2ns);  // 1.33 ns, rounded up
    // The limit for frames is a sixth of the clock's room, about 48 years from here: 40 years is
    // a deadline, 120 none (UBSan, in the asan build, sees any overflow on the way).
    const auto forty = std::chrono::duration_cast<frames>(std::chrono::hours(24 * 365 * 40));
    CHECK(deadline_after(now, forty) == now + std::chrono::ceil<gr::duration>(forty));
    CHECK(deadline_after(now, std::chrono::duration_cast<frames>(std::chrono::hours(24 * 365 * 120))) == max);
    CHECK(deadline_after(now, frames::max()) == max);
    CHECK(deadline_after(now, thirds::max()) == max);
    CHECK(deadline_after(now, std::chrono::duration<int, std::milli>(1500)) == at(11500ms));
    CHECK(deadline_after(now, std::chrono::duration<float>(0.25f)) == at(10250ms));
  }

  TEST_CASE("a timed wait of hours::max() waits for its event and never times out") {
    gr_test::use_clock<gr::virtual_clock> vc;
    constexpr auto forever = std::chrono::hours::max();
    gr::mutex m;
    gr::condition_variable cv;
    gr::semaphore sem(0);
    gr::wait_group wg;
    wg.add(1);
    bool ready = false;
    gr::task sleeper = gr::spawn([] { gr::sleep_for(std::chrono::nanoseconds::max() / 4); });
    gr::task late = gr::spawn([&] {
      gr::sleep_for(1h);
      {
        std::unique_lock lock(m);
        ready = true;
      }
      cv.notify_all();
      sem.release();
      wg.done();
    });
    bool cv_ok = false, sem_ok = false, wg_ok = false;
    gr::task waiter = gr::spawn([&] {
      std::unique_lock lock(m);
      cv_ok = cv.wait_for(lock, forever, [&] { return ready; });
      lock.unlock();
      sem_ok = sem.try_acquire_for(forever);
      wg_ok = wg.wait_for(forever);
    });
    CHECK(waiter.join_for(forever));
    CHECK(cv_ok);
    CHECK(sem_ok);
    CHECK(wg_ok);
    CHECK(vc.elapsed() == 1h);
    CHECK(late.join_for(forever));
    // nanoseconds::max() / 4 is about 73 years: a real deadline, reached in virtual time.
    CHECK(sleeper.join_for(forever));
    CHECK(vc.elapsed() == std::chrono::ceil<gr::duration>(std::chrono::nanoseconds::max() / 4));
  }

  TEST_CASE("a sleep of hours::max() arms no timer so a wait on it is a deadlock and not a hang") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::task sleeper = gr::spawn([] { gr::sleep_for(std::chrono::hours::max()); });
    CHECK_THROWS_WITH_AS(sleeper.join(), doctest::Contains("sleep"), gr::deadlock_error);
    CHECK(vc.elapsed() == 0s);
    sleeper.cancel();
    CHECK_NOTHROW(sleeper.join());
  }

  TEST_CASE("a timed wait of a negative or zero duration is due at once") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::semaphore sem(0);
    gr::task t = gr::spawn([] { gr::sleep_for(1s); });
    CHECK(!t.join_for(-5s));
    CHECK(!t.join_for(0s));
    CHECK(!sem.try_acquire_for(std::chrono::hours::min()));
    gr::sleep_for(-1s);
    CHECK(vc.elapsed() == 0s);
    t.join();
  }

  TEST_CASE("run_for(duration::max()) runs until nothing is runnable and a spent budget runs one frame") {
    gr_test::use_clock<gr::virtual_clock> vc;
    auto& sched = gr::scheduler::current();
    int steps = 0;
    gr::task stepper = gr::spawn([&] {
      for (int i = 0; i < 3; ++i) {
        ++steps;
        gr::yield();
      }
    });
    CHECK(sched.run_for(-1s));  // one frame, though the budget is spent
    CHECK(steps == 1);
    CHECK(sched.run_for(0s));
    CHECK(steps == 2);
    gr::task sleeper = gr::spawn([] { gr::sleep_for(5h); });
    CHECK(!sched.run_for(gr::duration::max()));
    CHECK(steps == 3);
    CHECK(vc.elapsed() == 5h);
    stepper.join();
    sleeper.join();
  }
}

TEST_SUITE("sched.clock") {
  TEST_CASE("changing the clock while a task waits with a deadline throws gr::error naming the task") {
    auto& sched = gr::scheduler::current();
    static gr::manual_clock frame;  // static: a failed check must not leave a dangling clock installed
    gr::task napper = gr::spawn([] { gr::sleep_for(1h); }, {.name = "napper"});
    CHECK(sched.run_once());  // it sleeps now, on the steady clock
    CHECK_THROWS_WITH_AS(sched.set_clock(frame), doctest::Contains("task #"), gr::error);
    CHECK_THROWS_WITH_AS(sched.set_clock(frame), doctest::Contains("'napper'"), gr::error);
    CHECK(&sched.clock() != &frame);
    CHECK_NOTHROW(sched.reset_clock());  // the steady clock is the current one: no change
    napper.cancel();
    napper.join();
    CHECK_NOTHROW(sched.set_clock(frame));
    gr::task frames = gr::spawn([] { gr::sleep_for(1s); }, {.name = "frames"});
    CHECK(sched.run_once());
    CHECK_THROWS_WITH_AS(sched.reset_clock(), doctest::Contains("'frames'"), gr::error);
    CHECK(&sched.clock() == &frame);
    frame.advance(1s);
    CHECK(!sched.run_once());
    frames.join();
    CHECK_NOTHROW(sched.reset_clock());
  }
}
