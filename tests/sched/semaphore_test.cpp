// gr::semaphore: permits, FIFO hand-off, timed acquire, misuse.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_SUITE("sched.semaphore") {
  TEST_CASE("acquire takes a permit and blocks when none is left") {
    gr::semaphore sem{2, "sem"};
    int inside = 0, most_inside = 0;
    std::vector<gr::task> tasks;
    for (int i = 0; i < 6; ++i)
      tasks.push_back(gr::spawn([&] {
        sem.acquire();
        most_inside = std::max(most_inside, ++inside);
        gr::yield();
        gr::sleep_for(1ms);
        --inside;
        sem.release();
      }));
    gr::yield();
    CHECK(inside == 2);
    CHECK(sem.available() == 0);
    for (auto& t : tasks) t.join();
    CHECK(most_inside == 2);
    CHECK(sem.available() == 2);
  }

  TEST_CASE("release hands permits to the waiters in the order they asked") {
    gr::semaphore sem{0, "sem"};
    std::string order;
    std::vector<gr::task> tasks;
    for (char c : std::string("qwerty"))
      tasks.push_back(gr::spawn([&, c] {
        sem.acquire();
        order += c;
      }));
    gr::yield();
    sem.release(2);
    gr::yield();
    CHECK(order == "qw");
    for (int i = 0; i < 4; ++i) sem.release();
    for (auto& t : tasks) t.join();
    CHECK(order == "qwerty");
    CHECK(sem.available() == 0);
  }

  TEST_CASE("a permit released to a waiter cannot be taken by anyone else") {
    gr::semaphore sem{0, "sem"};
    bool got = false;
    auto t = gr::spawn([&] {
      sem.acquire();
      got = true;
    });
    gr::yield();
    sem.release();
    CHECK(sem.available() == 0);  // already the waiter's
    CHECK(!sem.try_acquire());
    CHECK(!got);
    t.join();
    CHECK(got);
  }

  TEST_CASE("try_acquire never blocks") {
    gr::semaphore sem{1};
    CHECK(sem.try_acquire());
    CHECK(!sem.try_acquire());
    sem.release();
    CHECK(sem.available() == 1);
    CHECK(sem.try_acquire());
  }

  TEST_CASE("try_acquire_for gives up at its deadline") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::semaphore sem{0, "sem"};
    bool got = true;
    auto t = gr::spawn([&] { got = sem.try_acquire_for(3s); });
    t.join();
    CHECK(!got);
    CHECK(vc.elapsed() == 3s);
    sem.release();
    CHECK(sem.available() == 1);  // not handed to the waiter that left
  }

  TEST_CASE("try_acquire_until succeeds when a permit comes before the deadline") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::semaphore sem{0, "sem"};
    bool got = false;
    auto t = gr::spawn([&] { got = sem.try_acquire_until(gr_test::at(5s)); });
    auto r = gr::spawn([&] {
      gr::sleep_for(2s);
      sem.release();
    });
    t.join();
    r.join();
    CHECK(got);
    CHECK(vc.elapsed() == 2s);
    CHECK(sem.available() == 0);
  }

  TEST_CASE("negative counts throw gr::error") {
    CHECK_THROWS_AS(gr::semaphore(-1), gr::error);
    gr::semaphore sem{0};
    CHECK_THROWS_AS(sem.release(-1), gr::error);
    CHECK(sem.available() == 0);
  }
}
