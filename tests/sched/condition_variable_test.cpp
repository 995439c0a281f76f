// gr::condition_variable: FIFO wake-ups, predicates, deadlines, the mutex on every way out.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_SUITE("sched.condition_variable") {
  TEST_CASE("notify_one wakes the waiters in the order they started waiting") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    std::string order;
    std::vector<gr::task> tasks;
    for (char c : std::string("cab"))
      tasks.push_back(gr::spawn([&, c] {
        std::unique_lock l(m);
        cv.wait(l);
        order += c;
      }));
    gr::yield();
    for (int i = 0; i < 3; ++i) {
      cv.notify_one();
      gr::yield();  // the woken one runs (and finishes) before the next notify
      CHECK(order.size() == static_cast<std::size_t>(i + 1));
    }
    for (auto& t : tasks) t.join();
    CHECK(order == "cab");
  }

  TEST_CASE("notify_all wakes every waiter") {
    gr::mutex m;
    gr::condition_variable cv;
    int woke = 0;
    std::vector<gr::task> tasks;
    for (int i = 0; i < 10; ++i)
      tasks.push_back(gr::spawn([&] {
        std::unique_lock l(m);
        cv.wait(l);
        ++woke;
      }));
    gr::yield();
    CHECK(woke == 0);
    cv.notify_all();
    for (auto& t : tasks) t.join();
    CHECK(woke == 10);
  }

  TEST_CASE("a notify with nobody waiting is not remembered") {
    gr::mutex m;
    gr::condition_variable cv;
    bool woke = false;
    cv.notify_one();
    cv.notify_all();
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      cv.wait(l);
      woke = true;
    });
    gr::yield();
    CHECK(!woke);
    cv.notify_one();
    t.join();
    CHECK(woke);
  }

  TEST_CASE("wait with a predicate returns only once the predicate holds") {
    gr::mutex m;
    gr::condition_variable cv;
    int value = 0;
    int seen = -1;
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      cv.wait(l, [&] { return value >= 3; });
      seen = value;
    });
    for (int i = 1; i <= 3; ++i) {
      gr::yield();
      {
        std::lock_guard g(m);
        value = i;
      }
      cv.notify_one();
    }
    t.join();
    CHECK(seen == 3);
  }

  TEST_CASE("a wait returns with the mutex locked") {
    gr::mutex m{"m"};
    gr::condition_variable cv;
    bool locked_after = false;
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      cv.wait(l);
      locked_after = l.owns_lock() && m.locked();
    });
    gr::yield();
    CHECK(!m.locked());  // the waiter let go of it while waiting
    {
      std::lock_guard g(m);
      cv.notify_one();
      gr::yield();  // the waiter wakes but must wait for the main task to unlock
      CHECK(!t.done());
    }
    t.join();
    CHECK(locked_after);
  }

  TEST_CASE("wait_until times out at its deadline and returns with the mutex locked") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m;
    gr::condition_variable cv;
    std::cv_status status = std::cv_status::no_timeout;
    bool locked_after = false;
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      status = cv.wait_until(l, gr_test::at(4s));
      locked_after = l.owns_lock() && m.locked();
    });
    t.join();
    CHECK(status == std::cv_status::timeout);
    CHECK(locked_after);
    CHECK(vc.elapsed() == 4s);
  }

  TEST_CASE("wait_for with a predicate reports whether the predicate came true in time") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m;
    gr::condition_variable cv;
    bool ready = false, result = false, set_in_time = false;
    SUBCASE("in time") { set_in_time = true; }
    SUBCASE("too late") { set_in_time = false; }
    auto setter = gr::spawn([&] {
      gr::sleep_for(set_in_time ? 1s : 5s);
      std::lock_guard g(m);
      ready = true;
      cv.notify_all();
    });
    auto waiter = gr::spawn([&] {
      std::unique_lock l(m);
      result = cv.wait_for(l, 2s, [&] { return ready; });
    });
    waiter.join();
    CHECK(result == set_in_time);
    CHECK(vc.elapsed() == (set_in_time ? 1s : 2s));
    setter.join();
  }

  TEST_CASE("a waiter that timed out leaves the queue") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m;
    gr::condition_variable cv;
    std::string log;
    auto quick = gr::spawn([&] {
      std::unique_lock l(m);
      if (cv.wait_for(l, 1s) == std::cv_status::timeout) log += "timeout ";
    });
    auto patient = gr::spawn([&] {
      std::unique_lock l(m);
      cv.wait(l);
      log += "notified";
    });
    gr::sleep_for(2s);
    cv.notify_one();  // must reach `patient`, not the gone `quick`
    quick.join();
    patient.join();
    CHECK(log == "timeout notified");
  }

  TEST_CASE("wait without holding the lock throws gr::error") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    gr::semaphore go{0};
    std::unique_lock<gr::mutex> unlocked(m, std::defer_lock);
    CHECK_THROWS_AS(cv.wait(unlocked), gr::error);
    auto holder = gr::spawn([&] {
      std::lock_guard g(m);
      go.acquire();
    });
    gr::yield();  // another task owns m now
    std::unique_lock<gr::mutex> not_mine(m, std::adopt_lock);
    CHECK_THROWS_AS(cv.wait(not_mine), gr::error);
    CHECK_THROWS_AS((void)cv.wait_for(not_mine, 1s), gr::error);
    (void)not_mine.release();
    go.release();
    holder.join();
    CHECK(!m.locked());
  }

  TEST_CASE("a deadlock while taking the mutex back leaves the lock not owning it") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    gr::semaphore never{0, "never"};
    auto holder = gr::spawn(
        [&] {
          std::lock_guard g(m);
          cv.notify_one();
          never.acquire();  // blocks forever holding m
        },
        {.name = "holder"});
    std::unique_lock l(m);
    bool deadlock = false;
    try {
      cv.wait(l);  // notified, then blocks taking m back: nothing can ever run again
    } catch (const gr::deadlock_error& e) {
      deadlock = gr_test::contains(e.what(), "lock mutex 'm'");
    }
    CHECK(deadlock);
    CHECK(!l.owns_lock());  // so its destructor does not unlock a mutex this task does not own
    CHECK(m.locked());
    holder.cancel();
    holder.join();
    CHECK(!m.locked());
  }
}
