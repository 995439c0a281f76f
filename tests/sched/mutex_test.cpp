// gr::mutex: exclusion across blocking, FIFO hand-off, timed locking, misuse.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_SUITE("sched.mutex") {
  TEST_CASE("a mutex excludes other tasks while its owner blocks inside") {
    gr::mutex m{"m"};
    std::string log;
    int inside = 0, most_inside = 0;
    std::vector<gr::task> tasks;
    for (char c : std::string("abc"))
      tasks.push_back(gr::spawn([&, c] {
        for (int i = 0; i < 2; ++i) {
          std::lock_guard g(m);
          most_inside = std::max(most_inside, ++inside);
          log += c;
          gr::yield();  // others run, but none gets in
          gr::sleep_for(1ms);
          log += c;
          --inside;
        }
      }));
    for (auto& t : tasks) t.join();
    CHECK(most_inside == 1);
    CHECK(log.size() == 12);
    for (std::size_t i = 0; i < log.size(); i += 2) CHECK(log[i] == log[i + 1]);
  }

  TEST_CASE("waiters get the mutex in the order they asked for it") {
    gr::mutex m{"m"};
    std::string order;
    m.lock();
    std::vector<gr::task> tasks;
    for (char c : std::string("edcba"))
      tasks.push_back(gr::spawn([&, c] {
        std::lock_guard g(m);
        order += c;
        gr::yield();  // hold it across a switch: the queue must not reorder meanwhile
      }));
    gr::yield();  // all five queue up, in spawn order
    m.unlock();
    for (auto& t : tasks) t.join();
    CHECK(order == "edcba");
    CHECK(!m.locked());
  }

  TEST_CASE("unlock hands the mutex to the first waiter so nobody barges in") {
    gr::mutex m{"m"};
    m.lock();
    bool waiter_got_it = false;
    auto t = gr::spawn([&] {
      m.lock();
      waiter_got_it = true;
      m.unlock();
    });
    gr::yield();  // t waits
    m.unlock();
    CHECK(m.locked());      // already t's, though t has not run yet
    CHECK(!m.try_lock());   // so the main task cannot take it back
    CHECK(!waiter_got_it);
    t.join();
    CHECK(waiter_got_it);
    CHECK(m.try_lock());
    m.unlock();
  }

  TEST_CASE("try_lock takes a free mutex and fails on a held one") {
    gr::mutex m;
    CHECK(m.try_lock());
    CHECK(m.locked());
    bool other_got_it = true;
    auto t = gr::spawn([&] { other_got_it = m.try_lock(); });
    t.join();
    CHECK(!other_got_it);
    m.unlock();
    CHECK(!m.locked());
  }

  TEST_CASE("try_lock_for gives up at its deadline and leaves the queue") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m{"m"};
    bool got = true;
    auto holder = gr::spawn([&] {
      std::lock_guard g(m);
      gr::sleep_for(10s);
    });
    auto waiter = gr::spawn([&] { got = m.try_lock_for(3s); });
    waiter.join();
    CHECK(!got);
    CHECK(vc.elapsed() == 3s);
    holder.join();
    CHECK(!m.locked());  // the timed-out waiter was not handed the mutex
  }

  TEST_CASE("try_lock_until succeeds when the mutex is handed over before the deadline") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m{"m"};
    bool got = false;
    auto holder = gr::spawn([&] {
      std::lock_guard g(m);
      gr::sleep_for(2s);
    });
    auto waiter = gr::spawn([&] {
      got = m.try_lock_until(gr_test::at(5s));
      if (got) m.unlock();
    });
    waiter.join();
    holder.join();
    CHECK(got);
    CHECK(vc.elapsed() == 2s);
  }

  TEST_CASE("a mutex works with the standard lock types") {
    gr::mutex a{"a"}, b{"b"};
    auto t = gr::spawn([&] {
      std::scoped_lock both(a, b);
      gr::yield();
    });
    gr::yield();
    CHECK(a.locked());
    CHECK(b.locked());
    {
      std::unique_lock la(a);  // waits for t
      CHECK(la.owns_lock());
      CHECK(!b.locked());
    }
    t.join();
  }

  TEST_CASE("locking a mutex the task already holds throws gr::error") {
    gr::mutex m{"again"};
    m.lock();
    CHECK_THROWS_WITH_AS(m.lock(), "gr::mutex::lock: the main task already owns mutex 'again' (it is not recursive)",
                         gr::error);
    CHECK_THROWS_AS((void)m.try_lock_for(1s), gr::error);
    m.unlock();
  }

  TEST_CASE("unlocking a mutex another task holds throws gr::error") {
    gr::mutex m{"theirs"};
    m.lock();
    bool threw = false;
    std::string message;
    auto t = gr::spawn(
        [&] {
          try {
            m.unlock();
          } catch (const gr::error& e) {
            threw = true;
            message = e.what();
          }
        },
        {.name = "intruder"});
    t.join();
    CHECK(threw);
    CHECK(gr_test::contains(message, "gr::mutex::unlock: task #"));
    CHECK(gr_test::contains(message, " 'intruder' does not own mutex 'theirs' (the main task does)"));
    CHECK(m.locked());
    m.unlock();
    CHECK_THROWS_WITH_AS(m.unlock(), "gr::mutex::unlock: the main task does not own mutex 'theirs' (nobody does)",
                         gr::error);
  }
}
