// close(): what it does to buffered values, to later operations, and to every blocked waiter.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <optional>
#include <string>
#include <vector>

using gr::channel_status;
using namespace gr_test;

TEST_SUITE("channel.close") {
  TEST_CASE_TEMPLATE("recv on a closed and drained channel returns nullopt", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    c.close();
    CHECK(c.recv() == std::nullopt);
    CHECK(c.recv() == std::nullopt);  // and keeps doing so
    CHECK(c.try_recv().status == channel_status::closed);
    CHECK(c.recv_for(1h).status == channel_status::closed);
  }

  TEST_CASE_TEMPLATE("values buffered before close are received before nullopt", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    fill(c, C::value);
    c.close();
    for (std::size_t i = 0; i < C::value; ++i) {
      gr::recv_result<int> r = i % 2 ? c.try_recv() : c.recv_for(1h);
      CHECK(r.status == channel_status::ok);
      CHECK(r.value == static_cast<int>(i));
    }
    CHECK(c.try_recv().status == channel_status::closed);
    CHECK(c.recv() == std::nullopt);
  }

  TEST_CASE_TEMPLATE("send on a closed channel throws channel_closed naming the channel", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value, "jobs");
    c.close();
    try {
      c.send(1);
      FAIL("send on a closed channel returned");
    } catch (const gr::channel_closed& e) {
      CHECK(contains(e.what(), "channel 'jobs'"));
      CHECK(contains(e.what(), "send"));
    }
    const int lvalue = 2;
    CHECK_THROWS_AS(c.send(lvalue), gr::channel_closed);
    // The non-throwing forms report it instead.
    CHECK(c.try_send(3) == channel_status::closed);
    CHECK(c.try_send(lvalue) == channel_status::closed);
    CHECK(c.send_for(4, 1h) == channel_status::closed);
    CHECK(c.size() == 0);
  }

  TEST_CASE_TEMPLATE("closing twice throws channel_closed", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value, "twice");
    c.close();
    try {
      c.close();
      FAIL("a second close returned");
    } catch (const gr::channel_closed& e) {
      CHECK(contains(e.what(), "channel 'twice'"));
      CHECK(contains(e.what(), "already closed"));
    }
    CHECK(c.closed());
  }

  TEST_CASE("an unnamed channel is named by its address in messages") {
    gr::channel<int> c;
    c.close();
    try {
      c.close();
      FAIL("a second close returned");
    } catch (const gr::channel_closed& e) {
      CHECK(contains(e.what(), "channel 0x"));
    }
  }

  TEST_CASE_TEMPLATE("close wakes every blocked receiver with nullopt", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::vector<int> results(5, 0);  // 1: got nullopt
    std::vector<gr::task> receivers;
    for (std::size_t i = 0; i < results.size(); ++i) {
      receivers.push_back(gr::spawn([&, i] {
        if (i % 2)
          results[i] = c.recv() == std::nullopt ? 1 : 2;
        else
          results[i] = c.recv_for(1h).status == channel_status::closed ? 1 : 2;
      }));
    }
    gr::yield();  // all block
    c.close();
    for (auto& t : receivers) t.join();
    CHECK(results == std::vector<int>(5, 1));
  }

  TEST_CASE_TEMPLATE("close makes every blocked sender throw and loses nothing sent before it", C,
                     GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value, "closing");
    // Senders that complete before the close: their values are buffered or taken.
    fill(c, C::value);
    std::vector<int> outcome(4, 0);  // 1: send threw channel_closed; 2: send_for reported closed
    std::vector<gr::task> senders;
    for (std::size_t i = 0; i < outcome.size(); ++i) {
      senders.push_back(gr::spawn([&, i] {
        if (i % 2) {
          outcome[i] = c.send_for(100 + static_cast<int>(i), 1h) == channel_status::closed ? 2 : -1;
          return;
        }
        try {
          c.send(100 + static_cast<int>(i));
          outcome[i] = -1;
        } catch (const gr::channel_closed& e) {
          outcome[i] = contains(e.what(), "channel 'closing'") ? 1 : -2;
        }
      }));
    }
    gr::yield();  // all four block: the buffer is full
    c.close();
    for (auto& t : senders) t.join();
    CHECK(outcome == std::vector<int>{1, 2, 1, 2});
    // Every value sent before the close comes out; none of the failed senders' values does.
    for (int i = 0; i < n; ++i) CHECK(c.recv() == i);
    CHECK(c.recv() == std::nullopt);
  }

  TEST_CASE_TEMPLATE("a value handed over before close is received after it", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::optional<int> got;
    int after = 0;
    auto receiver = gr::spawn([&] {
      got = c.recv();
      after = c.recv() == std::nullopt ? 1 : 2;
    });
    gr::yield();  // blocks in recv
    c.send(7);    // completes the receiver, which has not run yet
    c.close();
    receiver.join();
    CHECK(got == 7);
    CHECK(after == 1);
  }

  TEST_CASE_TEMPLATE("close from a task wakes the main task blocked in recv", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    auto closer = gr::spawn([&] {
      c.send(1);
      c.close();
    });
    CHECK(c.recv() == 1);
    CHECK(c.recv() == std::nullopt);
    closer.join();
  }
}
