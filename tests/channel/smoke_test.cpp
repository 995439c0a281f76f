#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <memory>
#include <string>

TEST_SUITE("channel.smoke") {
  TEST_CASE("unbuffered ping pong delivers every value in order") {
    gr::channel<int> a, b;
    auto t = gr::spawn([&] {
      for (;;) {
        auto v = a.recv();
        if (!v) break;
        b.send(*v * 2);
      }
      b.close();
    });
    for (int i = 0; i < 100; ++i) {
      a.send(i);
      CHECK(b.recv() == i * 2);
    }
    a.close();
    CHECK(b.recv() == std::nullopt);
    t.join();
  }
  TEST_CASE("buffered values survive close and range-for drains them") {
    gr::channel<std::unique_ptr<int>> c(4);
    for (int i = 0; i < 4; ++i) c.send(std::make_unique<int>(i));
    c.close();
    int sum = 0;
    for (auto& p : c) sum += *p;
    CHECK(sum == 6);
    CHECK_THROWS_AS(c.send(std::make_unique<int>(1)), gr::channel_closed);
  }
  TEST_CASE("select picks the ready case and times out when none is ready") {
    gr::virtual_clock vc;
    gr::scheduler::current().set_clock(vc);
    gr::channel<int> a, b(1);
    b.send(7);
    int got = 0;
    auto i = gr::select(gr::recv_case(a, [&](std::optional<int> v) { got = *v; }),
                        gr::recv_case(b, [&](std::optional<int> v) { got = *v; }));
    CHECK(i == 1);
    CHECK(got == 7);
    bool timed_out = false;
    i = gr::select(gr::recv_case(a), gr::timeout_case(std::chrono::milliseconds(5), [&] { timed_out = true; }));
    CHECK(i == 1);
    CHECK(timed_out);
    gr::scheduler::current().reset_clock();
  }
  TEST_CASE("select fairness between two always ready channels") {
    gr::channel<int> a(1000), b(1000);
    for (int i = 0; i < 1000; ++i) { a.send(i); b.send(i); }
    int ca = 0, cb = 0;
    for (int i = 0; i < 1000; ++i) {
      if (gr::select(gr::recv_case(a), gr::recv_case(b)) == 0) ++ca; else ++cb;
    }
    CHECK(ca > 400);
    CHECK(cb > 400);
  }
  TEST_CASE("select parks and a later sender completes it") {
    gr::channel<int> a(0, "a"), b(0, "b");
    auto t = gr::spawn([&] { gr::yield(); b.send(42); });
    int got = 0;
    auto i = gr::select(gr::recv_case(a, [&](std::optional<int> v) { got = v.value_or(-1); }),
                        gr::recv_case(b, [&](std::optional<int> v) { got = v.value_or(-1); }));
    CHECK(i == 1);
    CHECK(got == 42);
    t.join();
  }
  TEST_CASE("deadlock report names the channel") {
    gr::channel<int> c(0, "jobs");
    auto t = gr::spawn([&] { c.recv(); }, {.name = "worker"});
    try {
      t.join();
      FAIL("expected deadlock");
    } catch (const gr::deadlock_error& e) {
      MESSAGE(e.what());
      CHECK(std::string(e.what()).find("recv on channel 'jobs'") != std::string::npos);
    }
    c.close();
    t.join();
  }
}
