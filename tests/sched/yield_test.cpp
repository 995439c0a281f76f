// yield(): round-robin order, and what it must keep doing now that a yielding task resumes
// straight into yield's caller (greenlet::yield_transfer, in optimised unsanitized builds): finished
// tasks still give their stacks back, and the switch count and trace stay right.
#include <doctest/doctest.h>

#include <gr/runtime/stack.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

TEST_SUITE("sched.yield") {
  TEST_CASE("yield runs every other ready task once, in order, before the yielder again") {
    std::string order;
    std::vector<gr::task> tasks;
    for (char c : std::string("abc"))
      tasks.push_back(gr::spawn([&order, c] {
        for (int i = 0; i < 3; ++i) {
          order += c;
          gr::yield();
        }
      }));
    for (int i = 0; i < 3; ++i) {
      order += 'M';
      gr::yield();
    }
    for (auto& t : tasks) t.join();
    CHECK(order == "MabcMabcMabc");
  }

  TEST_CASE("tasks that finish while the main task only yields give their stacks back") {
    // Each task's death switches to a task parked in yield(), which frees nothing when it resumes:
    // the finished task's stack must still be freed before the next one dies.
    const long long before = gr::stack_statistics().live;
    long long peak = 0;
    for (int round = 0; round < 50; ++round) {
      for (int i = 0; i < 4; ++i)
        gr::spawn([] {
          gr::yield();
        }).detach();
      while (gr::scheduler::current().task_count() > 0) {
        gr::yield();
        peak = std::max(peak, gr::stack_statistics().live - before);
      }
    }
    CHECK(peak <= 5);  // four tasks and at most one finished one not yet freed
    CHECK(gr::scheduler::current().snapshot().size() == 1);  // frees a leftover; only main remains
    CHECK(gr::stack_statistics().live == before);
  }

  TEST_CASE("a task parked in yield unwinds from its yield call when the thread ends") {
    bool unwound = false;
    bool caught_here = false;
    std::thread([&] {
      struct guard {
        bool* flag;
        ~guard() { *flag = true; }
      };
      gr::spawn([&] {
        guard g{&unwound};
        try {
          for (;;) gr::yield();
        } catch (...) {
          caught_here = true;  // the unwinding comes out of the yield() call
          throw;
        }
      }).detach();
      gr::yield();
      gr::yield();
    }).join();
    CHECK(unwound);
    CHECK(caught_here);
  }

  TEST_CASE("switch counts count yields") {
    auto t = gr::spawn([] {
      for (int i = 0; i < 10; ++i) gr::yield();
    });
    for (int i = 0; i < 10; ++i) gr::yield();
    const auto tasks = gr::scheduler::current().snapshot();
    REQUIRE(tasks.size() == 2);
    CHECK(tasks[1].switches == 10);
    t.join();
  }
}
