// Cancellation of tasks blocked in send, recv and select: they wake with gr::task_cancelled,
// leave no registration behind, and lose nothing that was already handed over.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <functional>
#include <optional>

using gr::channel_status;
using namespace gr_test;

namespace {

// blocked_then_cancelled: runs `op` in a task, lets it block, cancels it, and returns 1 if `op`
// raised gr::task_cancelled (which then ended the task), 0 if it returned, -1 if it raised
// something else.
int blocked_then_cancelled(const std::function<void()>& op) {
  int outcome = -2;
  auto t = gr::spawn([&] {
    try {
      op();
      outcome = 0;
    } catch (const gr::task_cancelled&) {
      outcome = 1;
      throw;  // ends the task; a cancelled task joins normally
    } catch (...) {
      outcome = -1;
    }
  });
  gr::yield();  // it blocks
  CHECK_FALSE(t.done());
  t.cancel();
  t.join();
  return outcome;
}

}  // namespace

TEST_SUITE("channel.cancel") {
  TEST_CASE_TEMPLATE("a cancelled task blocked in send wakes with task_cancelled and sends nothing", C,
                     GR_TEST_CAPACITIES) {
    const int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value), other(C::value);
    fill(c, C::value);
    SUBCASE("send") { CHECK(blocked_then_cancelled([&] { c.send(100); }) == 1); }
    SUBCASE("send_for") {
      CHECK(blocked_then_cancelled([&] { (void)c.send_for(100, 1h); }) == 1);
    }
    SUBCASE("select") {
      CHECK(blocked_then_cancelled([&] { gr::select(gr::send_case(c, 100), gr::recv_case(other)); }) == 1);
      check_no_stale_receiver(other);
    }
    check_no_stale_sender(c, 0, n);
  }

  TEST_CASE_TEMPLATE("a cancelled task blocked in recv wakes with task_cancelled and takes nothing", C,
                     GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value), other(C::value);
    fill(other, C::value);
    SUBCASE("recv") { CHECK(blocked_then_cancelled([&] { (void)c.recv(); }) == 1); }
    SUBCASE("recv_for") { CHECK(blocked_then_cancelled([&] { (void)c.recv_for(1h); }) == 1); }
    SUBCASE("range-for") {
      CHECK(blocked_then_cancelled([&] {
              for (int v : c) (void)v;
            }) == 1);
    }
    SUBCASE("select with a timeout") {
      CHECK(blocked_then_cancelled([&] {
              gr::select(gr::recv_case(c), gr::send_case(other, 1), gr::timeout_case(1h));
            }) == 1);
      check_no_stale_sender(other, 0, static_cast<int>(C::value));
    }
    check_no_stale_receiver(c);
  }

  TEST_CASE("a cancelled select with no cases wakes with task_cancelled") {
    CHECK(blocked_then_cancelled([] { gr::select(); }) == 1);
  }

  TEST_CASE_TEMPLATE("a value handed to a blocked receiver before the cancel is not lost", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::optional<int> got;
    int later = 0;
    auto receiver = gr::spawn([&] {
      got = c.recv();
      try {
        (void)c.recv();
      } catch (const gr::task_cancelled&) {
        later = 1;
      }
    });
    gr::yield();  // blocks
    c.send(7);    // completes the recv
    receiver.cancel();
    receiver.join();
    CHECK(got == 7);  // the completed operation returned normally
    CHECK(later == 1);  // the next one raised
  }

  TEST_CASE_TEMPLATE("a blocked sender whose value was taken before the cancel returns normally", C,
                     GR_TEST_CAPACITIES) {
    const int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value);
    fill(c, C::value);
    int outcome = 0;
    auto sender = gr::spawn([&] {
      try {
        c.send(100);
        outcome = 1;
        c.send(101);  // cancelled by now: raises even though it might not wait
        outcome = -1;
      } catch (const gr::task_cancelled&) {
        outcome = outcome == 1 ? 2 : -2;
      }
    });
    gr::yield();                          // blocks: the buffer is full
    CHECK(c.recv() == (n == 0 ? 100 : 0));  // takes the value (or moves it into the freed slot)
    sender.cancel();
    sender.join();
    CHECK(outcome == 2);
    for (int i = 1; i < n; ++i) CHECK(c.try_recv().value == i);
    if (n > 0) CHECK(c.try_recv().value == 100);
    CHECK(c.try_recv().status == channel_status::would_block);
  }

  TEST_CASE_TEMPLATE("a select completed before the cancel returns its case", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value);
    std::size_t fired = 99;
    std::optional<int> got;
    auto selector = gr::spawn([&] {
      fired = gr::select(gr::recv_case(a), gr::recv_case(b, [&](std::optional<int> v) { got = v; }));
    });
    gr::yield();  // parks
    b.send(5);
    selector.cancel();
    selector.join();
    CHECK(fired == 1);
    CHECK(got == 5);
    check_no_stale_receiver(a);
  }

  TEST_CASE_TEMPLATE("cancellation is sticky for channel operations that need not wait", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value), ready(1);
    CHECK(ready.try_send(1) == channel_status::ok);
    int raised = 0;
    auto t = gr::spawn([&] {
      try {
        (void)c.recv();
      } catch (const gr::task_cancelled&) {
      }
      // Still cancelled: every blocking call raises at once, even one that could complete.
      try {
        (void)ready.recv();
      } catch (const gr::task_cancelled&) {
        ++raised;
      }
      try {
        gr::select(gr::recv_case(ready));
      } catch (const gr::task_cancelled&) {
        ++raised;
      }
      try {  // several channel cases, one ready: the random pick
        gr::select(gr::recv_case(c), gr::recv_case(ready));
      } catch (const gr::task_cancelled&) {
        ++raised;
      }
      try {  // nothing ready but a default that would fire at once
        gr::select(gr::recv_case(c), gr::default_case());
      } catch (const gr::task_cancelled&) {
        ++raised;
      }
      try {
        (void)ready.recv_for(1h);
      } catch (const gr::task_cancelled&) {
        ++raised;
      }
    });
    gr::yield();
    t.cancel();
    t.join();
    CHECK(raised == 5);
    CHECK(ready.size() == 1);  // nothing was taken
  }
}
