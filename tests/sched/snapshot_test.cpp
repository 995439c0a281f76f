// scheduler::snapshot(): every task with its state, what it waits on and where it came from.
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
using gr_test::contains;

namespace {
const gr::task_info* find(const std::vector<gr::task_info>& v, std::uint64_t id) {
  for (const auto& i : v)
    if (i.id == id) return &i;
  return nullptr;
}
}  // namespace

TEST_SUITE("sched.snapshot") {
  TEST_CASE("a snapshot lists the main task first and then every task in spawn order") {
    auto a = gr::spawn([] {}, {.name = "a"});
    auto b = gr::spawn([] {}, {.name = "b"});
    auto c = gr::spawn([] {});
    const auto snap = gr::scheduler::current().snapshot();
    REQUIRE(snap.size() == 4);
    CHECK(snap[0].is_main);
    CHECK(snap[0].id == 0);
    CHECK(snap[0].name == "main");
    CHECK(snap[0].state == "running");
    CHECK(snap[0].spawned_at.empty());
    CHECK(snap[1].name == "a");
    CHECK(snap[2].name == "b");
    CHECK(snap[3].name.empty());
    CHECK(snap[3].id == c.id());
    for (std::size_t i = 1; i < 4; ++i) {
      CHECK(snap[i].state == "runnable");
      CHECK(!snap[i].is_main);
      CHECK(contains(snap[i].spawned_at, "snapshot_test.cpp:"));
      CHECK(snap[i].stack_size > 0);
      CHECK(snap[i].switches == 0);
    }
    a.join();
    b.join();
    c.join();
  }

  TEST_CASE("a snapshot shows what blocked tasks wait on and which tasks are done") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m{"vault"};
    std::unique_lock held(m);
    auto sleeper = gr::spawn([] { gr::sleep_for(5s); }, {.name = "sleeper"});
    auto locker = gr::spawn([&] { std::lock_guard g(m); }, {.name = "locker"});
    auto joiner = gr::spawn([&] { sleeper.join(); }, {.name = "joiner"});
    auto quick = gr::spawn([] {}, {.name = "quick"});
    auto spinner = gr::spawn([] { gr::yield(); }, {.name = "spinner"});
    gr::yield();

    const auto snap = gr::scheduler::current().snapshot();
    const auto* s = find(snap, sleeper.id());
    const auto* l = find(snap, locker.id());
    const auto* j = find(snap, joiner.id());
    const auto* q = find(snap, quick.id());
    const auto* p = find(snap, spinner.id());
    REQUIRE(s);
    REQUIRE(l);
    REQUIRE(j);
    REQUIRE(q);
    REQUIRE(p);
    CHECK(s->state == "blocked");
    CHECK(s->waiting == "sleep");
    CHECK(s->has_deadline);
    CHECK(s->deadline == gr_test::at(5s));
    CHECK(l->state == "blocked");
    CHECK(l->waiting == "lock mutex 'vault' (held by the main task)");
    CHECK(!l->has_deadline);
    CHECK(j->state == "blocked");
    CHECK(j->waiting == "join task 'sleeper' (#" + std::to_string(sleeper.id()) + ")");
    CHECK(q->state == "done");      // finished; its handle keeps the record
    CHECK(p->state == "runnable");  // yielded: queued behind the main task
    CHECK(p->switches == 1);

    held.unlock();
    spinner.join();
    joiner.join();
    locker.join();
    quick.join();
    CHECK(!sleeper.joinable());  // the joiner joined it
    CHECK(gr::scheduler::current().snapshot().size() == 1);
  }

  TEST_CASE("describe prints one line with the name state wait and spawn site") {
    gr::task_info i;
    i.id = 7;
    i.name = "worker";
    i.state = "blocked";
    i.waiting = "lock mutex 'm'";
    i.spawned_at = "main.cpp:12";
    const std::string line = gr::scheduler::describe(i);
    CHECK(contains(line, "task #7 'worker': blocked, waits to lock mutex 'm', spawned at main.cpp:12"));
    i.name.clear();
    i.cancelled = true;
    CHECK(contains(gr::scheduler::describe(i), "task #7: blocked, waits to lock mutex 'm', cancelled"));
  }
}
