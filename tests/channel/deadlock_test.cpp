// Blocked channel operations and selects in deadlock reports: the main task's blocking call
// throws gr::deadlock_error naming what every blocked task waits on.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <functional>
#include <sstream>
#include <string>

using namespace gr_test;

namespace {

// deadlock_report: runs `op` on the main task and returns the report of the deadlock it must
// end in ("" if it returned, with a failed check).
std::string deadlock_report(const std::function<void()>& op) {
  try {
    op();
  } catch (const gr::deadlock_error& e) {
    return e.what();
  }
  FAIL_CHECK("no deadlock was reported");
  return {};
}

// line_with: the report's line that contains `part` ("" if none).
std::string line_with(const std::string& report, const std::string& part) {
  std::istringstream in(report);
  for (std::string line; std::getline(in, line);)
    if (contains(line, part)) return line;
  return {};
}

}  // namespace

TEST_SUITE("channel.deadlock") {
  TEST_CASE_TEMPLATE("the main task blocked in recv gets a deadlock report naming the channel", C,
                     GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value, "jobs");
    const std::string report = deadlock_report([&] { (void)c.recv(); });
    INFO(report);
    CHECK(contains(report, "waits to recv on channel 'jobs'"));
    check_no_stale_receiver(c);  // the failed recv took itself out of the queue
  }

  TEST_CASE_TEMPLATE("the main task in a timed recv on a manual clock gets a deadlock report", C,
                     GR_TEST_CAPACITIES) {
    // The deadline can never come by itself: a manual clock moves only when the program moves it.
    use_clock<gr::manual_clock> frame_time;
    gr::channel<int> c(C::value, "frames");
    const std::string report = deadlock_report([&] { (void)c.recv_for(std::chrono::seconds(1)); });
    INFO(report);
    CHECK(contains(report, "waits to recv on channel 'frames'"));
    CHECK(contains(report, "manual_clock"));
    check_no_stale_receiver(c);
  }

  TEST_CASE_TEMPLATE("the main task blocked in send gets a deadlock report naming the channel", C,
                     GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value, "results");
    fill(c, C::value);
    const std::string report = deadlock_report([&] { c.send(1); });
    CHECK(contains(report, "waits to send on channel 'results'"));
    check_no_stale_sender(c, 0, static_cast<int>(C::value));
  }

  TEST_CASE("blocked tasks appear in the report with their names and their channels") {
    gr::channel<int> jobs(0, "jobs"), results(1, "results"), nameless;
    CHECK(results.try_send(0) == gr::channel_status::ok);
    auto worker = gr::spawn([&] { (void)jobs.recv(); }, {.name = "worker"});
    auto reporter = gr::spawn(
        [&] {
          try {
            results.send(1);
          } catch (const gr::channel_closed&) {
          }
        },
        {.name = "reporter"});
    auto anonymous = gr::spawn([&] { (void)nameless.recv(); });
    const std::string report = deadlock_report([&] { worker.join(); });
    INFO(report);
    CHECK(contains(line_with(report, "'worker':"), "waits to recv on channel 'jobs'"));
    CHECK(contains(line_with(report, "'reporter':"), "waits to send on channel 'results'"));
    CHECK(contains(report, "waits to recv on channel 0x"));  // an unnamed channel: its address
    jobs.close();
    results.close();
    nameless.close();
    worker.join();
    reporter.join();
    anonymous.join();
  }

  TEST_CASE_TEMPLATE("a blocked select appears in the report with its name and its cases", C, GR_TEST_CAPACITIES) {
    gr::channel<int> in(C::value, "in"), out(C::value, "out");
    fill(out, C::value);  // out is full: the send case waits
    auto selector = gr::spawn(
        [&] {
          gr::select(gr::select_options{.name = "loop"}, gr::recv_case(in), gr::send_case(out, 1));
        },
        {.name = "selector"});
    const std::string report = deadlock_report([&] { selector.join(); });
    INFO(report);
    CHECK(contains(line_with(report, "'selector':"), "select 'loop' over recv on channel 'in', send on channel 'out'"));
    selector.cancel();
    selector.join();
    check_no_stale_receiver(in);
    check_no_stale_sender(out, 0, static_cast<int>(C::value));
  }

  TEST_CASE("a select with no cases blocks forever and the report says so") {
    std::string report = deadlock_report([] { gr::select(); });
    CHECK(contains(report, "select over no cases"));
    report = deadlock_report([] { gr::select(gr::select_options{.name = "forever"}); });
    CHECK(contains(report, "select 'forever' over no cases"));
  }

  TEST_CASE_TEMPLATE("a select whose cases can never fire is a deadlock", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value, "a"), b(C::value, "b");
    fill(b, C::value);
    const std::string report = deadlock_report([&] { gr::select(gr::recv_case(a), gr::send_case(b, 2)); });
    CHECK(contains(report, "select over recv on channel 'a', send on channel 'b'"));
    check_no_stale_receiver(a);
    check_no_stale_sender(b, 0, static_cast<int>(C::value));
  }

  TEST_CASE("a select over nil channels only blocks forever and the report names them") {
    gr::channel<int>* nil = nullptr;
    const std::string report = deadlock_report([&] { gr::select(gr::recv_case(nil), gr::send_case(nil, 1)); });
    CHECK(contains(report, "select over a nil channel (never ready), a nil channel (never ready)"));
  }

  TEST_CASE("the main task can block on channels while other tasks run") {
    gr::channel<int> requests(0, "requests"), replies(0, "replies");
    auto server = gr::spawn([&] {
      for (int v : requests) replies.send(v * v);
      replies.close();
    });
    for (int i = 0; i < 10; ++i) {
      requests.send(i);
      CHECK(replies.recv() == i * i);
    }
    requests.close();
    CHECK(replies.recv() == std::nullopt);
    server.join();
  }
}
