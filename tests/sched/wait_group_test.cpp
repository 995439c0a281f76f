// gr::wait_group: waiting for a count of done() calls.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_SUITE("sched.wait_group") {
  TEST_CASE("wait returns once every done has been called") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::wait_group wg;
    int finished = 0;
    for (int i = 1; i <= 5; ++i) {
      wg.add(1);
      gr::spawn([&, i] {
        gr::sleep_for(std::chrono::seconds(i));
        ++finished;
        wg.done();
      }).detach();
    }
    CHECK(wg.count() == 5);
    wg.wait();
    CHECK(finished == 5);
    CHECK(wg.count() == 0);
    CHECK(vc.elapsed() == 5s);
  }

  TEST_CASE("wait returns at once when the counter is zero") {
    gr::wait_group wg;
    bool other_ran = false;
    auto t = gr::spawn([&] { other_ran = true; });
    wg.wait();
    CHECK(!other_ran);  // no switch
    t.join();
  }

  TEST_CASE("every waiter wakes when the counter reaches zero in the order they waited") {
    gr::wait_group wg{2, "wg"};
    std::string order;
    std::vector<gr::task> tasks;
    for (char c : std::string("xyz"))
      tasks.push_back(gr::spawn([&, c] {
        wg.wait();
        order += c;
      }));
    gr::yield();
    wg.done();
    gr::yield();
    CHECK(order.empty());
    wg.add(-1);
    for (auto& t : tasks) t.join();
    CHECK(order == "xyz");
  }

  TEST_CASE("wait_for gives up while the counter stays above zero") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::wait_group wg{1, "wg"};
    bool ok = true;
    auto t = gr::spawn([&] { ok = wg.wait_for(2s); });
    t.join();
    CHECK(!ok);
    CHECK(vc.elapsed() == 2s);
    wg.done();
    CHECK(wg.wait_until(gr_test::at(3s)));
    CHECK(vc.elapsed() == 2s);
  }

  TEST_CASE("wait_for and wait_until return true when the counter reaches zero while they wait") {
    // The main task parks in each timed wait; the last done() comes 1 s later, well before the
    // deadline, and ends the wait at once.
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::wait_group wg{1, "wg"};
    auto finisher = gr::spawn([&] {
      gr::sleep_for(1s);
      wg.done();
    });
    CHECK(wg.wait_for(5s));
    CHECK(vc.elapsed() == 1s);
    CHECK(wg.count() == 0);
    finisher.join();

    wg.add(1);
    finisher = gr::spawn([&] {
      gr::sleep_for(1s);
      wg.done();
    });
    CHECK(wg.wait_until(gr_test::at(7s)));
    CHECK(vc.elapsed() == 2s);
    finisher.join();
  }

  TEST_CASE("the counter cannot go below zero") {
    gr::wait_group wg{1};
    CHECK_THROWS_AS(wg.add(-2), gr::error);
    CHECK(wg.count() == 1);
    wg.done();
    CHECK_THROWS_AS(wg.done(), gr::error);
    CHECK_THROWS_AS(gr::wait_group(-1), gr::error);
  }
}
