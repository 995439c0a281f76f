// Channel misuse that must not pass silently (a capacity that is really a negative number, a
// channel touched from another thread), and the *_for forms' "forever".
#include <doctest/doctest.h>

#include "child_process.hpp"
#include "test_util.hpp"

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <chrono>
#include <csignal>
#include <cstddef>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using gr_test::run_in_child;

TEST_SUITE("channel.misuse") {
  TEST_CASE("a capacity no buffer can hold throws gr::error naming the channel") {
    CHECK_THROWS_WITH_AS(gr::channel<int>(static_cast<std::size_t>(-1), "jobs"),
                         doctest::Contains("(as a signed number, -1) for channel 'jobs'"), gr::error);
    CHECK_THROWS_WITH_AS(gr::channel<std::string>(static_cast<std::size_t>(-64)),
                         doctest::Contains("as a signed number, -64"), gr::error);
  }

  TEST_CASE("a channel used from another thread ends the process naming the waiting task and the channel") {
    SUBCASE("try_send from a thread with no scheduler") {
      const auto r = run_in_child([] {
        gr::channel<int> jobs(0, "jobs");
        gr::task worker = gr::spawn([&] { (void)jobs.recv(); }, {.name = "worker"});
        gr::scheduler::current().run_once();  // it waits to receive now
        std::thread([&] { (void)jobs.try_send(1); }).join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'worker' of another thread's scheduler, which waits to recv on channel 'jobs', was woken"));
      CHECK(r.says("from a thread that has no scheduler"));
    }
    SUBCASE("close from a thread with its own scheduler") {
      const auto r = run_in_child([] {
        gr::channel<int> results(4, "results");
        gr::task reader = gr::spawn([&] { (void)results.recv(); }, {.name = "reader"});
        gr::scheduler::current().run_once();
        std::thread([&] {
          gr::task idle = gr::spawn([] {});
          idle.join();  // this thread runs a scheduler of its own
          results.close();
        }).join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'reader' of another thread's scheduler, which waits to recv on channel 'results'"));
      CHECK(r.says("from a thread that runs another scheduler"));
    }
  }

  TEST_CASE("a channel destroyed while tasks wait on it ends the process naming each of them") {
    // Go's "first response wins" with an unbuffered channel: the losers still wait to send when
    // the channel goes out of scope. Their wait nodes would point into freed memory: an abort,
    // whose message names every waiting task (a select that already fired is not one of them).
    const auto r = run_in_child([] {
      gr::channel<int> other(0, "other");
      gr::channel<int> results(0, "results");  // destroyed first
      for (int i = 0; i < 2; ++i)
        gr::spawn([&, i] { results.send(i); }, {.name = "query " + std::to_string(i)}).detach();
      gr::spawn([&] { (void)gr::select(gr::recv_case(other), gr::send_case(results, 7)); }, {.name = "selector"})
          .detach();
      gr::scheduler::current().run_once();  // all three wait now
      (void)results.recv();                 // takes query 0's value
    });
    INFO(r.err);
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("gr: channel 'results' destroyed while tasks are blocked on it:\n"));
    CHECK_FALSE(r.says("'query 0'"));  // it sent and is gone
    CHECK(r.says("'query 1' (spawned at "));
    CHECK(r.says("misuse_test.cpp:"));
    CHECK(r.says("which waits to send on channel 'results'"));
    CHECK(r.says("'selector' (spawned at "));
    CHECK(r.says("close it, or let the tasks finish"));
  }

  TEST_CASE_TEMPLATE("recv_for and send_for and a timeout_case of hours::max() wait for their event", C, GR_TEST_CAPACITIES) {
    gr_test::use_clock<gr::virtual_clock> vc;
    constexpr auto forever = std::chrono::hours::max();
    gr::channel<int> c(C::value);
    gr::task late = gr::spawn([&] {
      gr::sleep_for(1h);
      CHECK(c.send_for(7, forever) == gr::channel_status::ok);
      gr::sleep_for(1h);
      for (std::size_t i = 0; i <= c.capacity(); ++i) CHECK(c.recv_for(forever).value == static_cast<int>(i));
    });
    auto r = c.recv_for(forever);
    CHECK(r.status == gr::channel_status::ok);
    CHECK(r.value == 7);
    CHECK(vc.elapsed() == 1h);
    bool timed_out = false;
    // Fill the buffer, then one more send that waits for the reader an hour later.
    for (std::size_t i = 0; i < c.capacity(); ++i) CHECK(c.try_send(static_cast<int>(i)) == gr::channel_status::ok);
    const std::size_t fired = gr::select(gr::send_case(c, static_cast<int>(c.capacity())),
                                         gr::timeout_case(forever, [&] { timed_out = true; }));
    CHECK(fired == 0);
    CHECK(!timed_out);
    CHECK(vc.elapsed() == 2h);
    late.join();
  }
}
