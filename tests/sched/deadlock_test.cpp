// Deadlock reports: when every task is blocked and nothing can wake one, the main task's blocking
// call (or run()) throws gr::deadlock_error naming each blocked task, what it waits on and where it
// was spawned.
#include <doctest/doctest.h>

#include "child_process.hpp"
#include "sanitizer_flags.hpp"
#include "test_util.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/trace.hpp>
#include <gr/sched/wait_group.hpp>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using gr_test::contains;

namespace {

// deadlock_text: runs `block` (in the main task) and returns the deadlock report it throws.
template <class F>
std::string deadlock_text(F&& block) {
  try {
    block();
  } catch (const gr::deadlock_error& e) {
    return e.what();
  }
  return "(no deadlock_error)";
}

std::string at_line(int line) { return "deadlock_test.cpp:" + std::to_string(line); }

}  // namespace

namespace {
std::string fmt_wake(const gr::trace_event& e) {
  return "task " + std::to_string(e.task) + " woken by " + std::to_string(e.other) + " from " +
         (e.reason ? gr::describe_wait(*e.reason) : std::string("?"));
}
}  // namespace

TEST_SUITE("sched.deadlock") {
  TEST_CASE("a lock-order deadlock names who holds each mutex") {
    // The classic cycle: each task holds one mutex and waits for the other. The report says who
    // holds what (the holder's name only, so a cycle cannot recurse).
    gr::mutex a{"a"}, b{"b"};
    gr::task first = gr::spawn([&] {
      std::lock_guard la(a);
      gr::yield();
      std::lock_guard lb(b);
    }, {.name = "first"});
    gr::task second = gr::spawn([&] {
      std::lock_guard lb(b);
      gr::yield();
      std::lock_guard la(a);
    }, {.name = "second"});
    const std::string report = deadlock_text([] { gr::scheduler::current().run(); });
    INFO(report);
    CHECK(contains(report, "'first': blocked, waits to lock mutex 'b' (held by task #" + std::to_string(second.id()) +
                               " 'second'), spawned at "));
    CHECK(contains(report, "'second': blocked, waits to lock mutex 'a' (held by task #" + std::to_string(first.id()) +
                               " 'first'), spawned at "));
    first.cancel();  // unwinds, releasing a: second takes it and ends
    second.join();
    first.join();
  }

  TEST_CASE("a deadlock report lists every blocked task with what it waits on and where it was spawned") {
    gr::mutex m{"ledger"};
    gr::condition_variable cv{"ready"};
    gr::semaphore sem{0, "slots"};
    gr::wait_group wg{1, "workers"};
    std::unique_lock<gr::mutex> held(m);
    std::vector<gr::task> tasks;
    tasks.push_back(gr::spawn([&] { m.lock(); }, {.name = "locker"})); const int l_locker = __LINE__;
    tasks.push_back(gr::spawn([&] { sem.acquire(); }, {.name = "acquirer"})); const int l_acquirer = __LINE__;
    tasks.push_back(gr::spawn([&] { wg.wait(); }, {.name = "grouper"})); const int l_grouper = __LINE__;
    tasks.push_back(gr::spawn([&] { tasks[0].join(); }, {.name = "joiner"})); const int l_joiner = __LINE__;
    gr::mutex m2{"m2"};
    tasks.push_back(gr::spawn([&] { std::unique_lock l(m2); cv.wait(l); })); const int l_anon = __LINE__;
    const std::uint64_t locker_id = tasks[0].id(), anon_id = tasks[4].id();

    const std::string report = deadlock_text([] { gr::scheduler::current().run(); });
    INFO(report);
    CHECK(contains(report, "gr: deadlock: every task is blocked"));
    CHECK(contains(report, "task #0 'main': blocked, waits to "));  // in run(); the wording may change
    CHECK(contains(report.substr(0, report.find("'locker'")), "run"));
    CHECK(contains(report, "'locker': blocked, waits to lock mutex 'ledger' (held by the main task), spawned at "));
    CHECK(contains(report, at_line(l_locker)));
    CHECK(contains(report, "'acquirer': blocked, waits to acquire semaphore 'slots', spawned at "));
    CHECK(contains(report, at_line(l_acquirer)));
    CHECK(contains(report, "'grouper': blocked, waits to wait on wait_group 'workers' (count 1), spawned at "));
    CHECK(contains(report, at_line(l_grouper)));
    CHECK(contains(report, "'joiner': blocked, waits to join task 'locker' (#" + std::to_string(locker_id) + ")"));
    CHECK(contains(report, at_line(l_joiner)));
    CHECK(contains(report, "task #" + std::to_string(anon_id) + ": blocked, waits to wait on condition_variable 'ready'"));
    CHECK(contains(report, at_line(l_anon)));
    // one line per blocked task, the main task included, after the heading
    CHECK(std::count(report.begin(), report.end(), '\n') == 1 + 6);

    // Clean up: every task can be cancelled out of its wait. The joiner first: one handle must not
    // be joined by two tasks at once.
    tasks[3].cancel();
    tasks[3].join();
    for (auto& t : tasks) t.cancel();
    for (auto& t : tasks)
      if (t.joinable()) t.join();
    held.unlock();
  }

  TEST_CASE("a blocking call of the main task reports the deadlock") {
    gr::mutex m{"m1"};
    m.lock();
    auto t = gr::spawn([&] { std::lock_guard g(m); }, {.name = "locker"});
    std::string report;
    SUBCASE("join") { report = deadlock_text([&] { t.join(); }); }
    SUBCASE("sleep on a manual clock") {
      gr_test::use_clock<gr::manual_clock> mc;
      report = deadlock_text([] { gr::sleep_for(1s); });
      CHECK(contains(report, "manual_clock moves only when the program advances it"));
    }
    SUBCASE("semaphore") {
      gr::semaphore sem{0, "s"};
      report = deadlock_text([&] { sem.acquire(); });
      CHECK(contains(report, "task #0 'main': blocked, waits to acquire semaphore 's'"));
    }
    INFO(report);
    CHECK(contains(report, "'locker': blocked, waits to lock mutex 'm1'"));
    CHECK(t.joinable());
    m.unlock();  // after a deadlock report the scheduler works on
    t.join();
  }

  TEST_CASE("a deadlock while other threads run says that they cannot wake the tasks") {
    // A Go port that hands a value over from a std::thread: gr's channels and primitives belong to
    // one thread, so the main task is deadlocked, and the report says why it may seem it is not.
    gr::semaphore sem{0, "from-thread"};
    std::mutex gate;
    gate.lock();
    std::thread other([&] { std::lock_guard g(gate); });  // lives until the report is in
    const std::string report = deadlock_text([&] { sem.acquire(); });
    gate.unlock();
    other.join();
    INFO(report);
    CHECK(contains(report, "task #0 'main': blocked, waits to acquire semaphore 'from-thread'"));
    CHECK(contains(report, " other thread(s): a task is woken only by its own thread"));
#if !GR_TEST_TSAN  // TSan's runtime runs a thread of its own
    CHECK(contains(report, "the process runs 1 other thread(s)"));
#endif
  }

  TEST_CASE("a deadlock in a single-threaded program does not talk of threads") {
    // In a child: the trace's signal thread, gr's own, would outlive the test.
    const std::string path = "/tmp/gr_deadlock_alone_" + std::to_string(::getpid()) + ".json";
    const gr_test::child_result r = gr_test::run_in_child([&] {
      gr::start_chrome_trace(path);  // starts a thread of gr's, which does not count
      gr::semaphore sem{0, "alone"};
      std::fputs(deadlock_text([&] { sem.acquire(); }).c_str(), stderr);
      gr::stop_chrome_trace();
    });
    std::remove(path.c_str());
    INFO(r.err);
    CHECK(r.exited_with(0));
    CHECK(contains(r.err, "task #0 'main': blocked, waits to acquire semaphore 'alone'"));
#if !GR_TEST_TSAN  // TSan's runtime runs a thread of its own
    CHECK_FALSE(contains(r.err, "other thread"));
#endif
  }

  TEST_CASE("a task sleeping on a clock that can advance is no deadlock") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::semaphore sem{0};
    auto t = gr::spawn([&] {
      gr::sleep_for(1h);
      sem.release();
    });
    CHECK_NOTHROW(sem.acquire());
    CHECK(vc.elapsed() == 1h);
    t.join();
  }

  TEST_CASE("a timed wait on a manual clock lists its deadline") {
    gr_test::use_clock<gr::manual_clock> mc;
    gr::semaphore sem{0, "timed"};
    auto t = gr::spawn([&] { (void)sem.try_acquire_for(1500ms); }, {.name = "patient"});
    const std::string report = deadlock_text([] { gr::scheduler::current().run(); });
    INFO(report);
    CHECK(contains(report, "'patient': blocked, waits to acquire semaphore 'timed' (deadline in 1500.000 ms)"));
    CHECK(contains(report, "cannot advance by itself"));
    mc->advance(2s);
    gr::scheduler::current().run();
    t.join();
  }

  TEST_CASE("a trace hook sees the main task woken by the deadlock") {
    // The main task's blocked span ended with no event, so a Chrome trace of a deadlocked program
    // showed no deadlock at all.
    static std::vector<std::string> seen;
    seen.clear();
    gr::trace_hook hook = [](const gr::trace_event& e, void*) {
      if (e.what == gr::trace_event::type::wake && e.wake == gr::detail::wake_reason::deadlock)
        seen.push_back(fmt_wake(e));
    };
    gr::semaphore never{0, "never"};
    gr::task stuck = gr::spawn([&] { never.acquire(); }, {.name = "stuck"});
    gr::trace_hook old = gr::set_trace_hook(hook);
    CHECK_THROWS_AS(stuck.join(), gr::deadlock_error);
    gr::set_trace_hook(old);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].rfind("task 0 woken by 0 from join task 'stuck' (#", 0) == 0);
    stuck.cancel();
    gr::scheduler::current().run();
  }
}
