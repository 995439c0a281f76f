// yield(): round-robin order, and what it must keep doing now that a yielding task resumes
// straight into yield's caller (greenlet::yield_transfer, in optimised unsanitized builds): finished
// tasks still give their stacks back, and the switch count and trace stay right.
#include <doctest/doctest.h>

#include "thread_check.hpp"

#include <gr/runtime/stack.hpp>
#include <gr/sched/ready_policy.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <algorithm>
#include <deque>
#include <memory>
#include <utility>
#include <string>
#include <vector>

namespace {
// abc_yield_order: tasks a, b and c and the main task ('M') each record themselves and yield,
// three times over; returns the order they ran in.
std::string abc_yield_order() {
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
  return order;
}
}  // namespace

TEST_SUITE("sched.yield") {
  TEST_CASE("yield runs every other ready task once and in order before the yielder again") {
    CHECK(abc_yield_order() == "MabcMabcMabc");
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
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
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
    });
    CHECK(unwound);
    CHECK(caught_here);
    CHECK(r.stacks_kept == 0);
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

  TEST_CASE("round-robin order holds while the ready queue wraps around and grows") {
    // The built-in queue is a ring that starts with 64 slots: forty tasks lapping it wrap its
    // indices, and the 200 tasks one of them spawns mid-lap make it grow while wrapped. A plain
    // FIFO model predicts every turn.
    constexpr int first = 40, laps = 5, extra = 200, spawner = 7, spawn_lap = 2;
    std::vector<int> order;
    std::vector<gr::task> tasks, late;
    for (int i = 0; i < first; ++i)
      tasks.push_back(gr::spawn([&, i] {
        for (int lap = 0; lap < laps; ++lap) {
          order.push_back(i);
          if (i == spawner && lap == spawn_lap)
            for (int j = 0; j < extra; ++j) late.push_back(gr::spawn([&order, j] { order.push_back(first + j); }));
          gr::yield();
        }
      }));
    for (auto& t : tasks) t.join();
    for (auto& t : late) t.join();

    std::deque<std::pair<int, int>> model;  // (task, turns taken)
    for (int i = 0; i < first; ++i) model.emplace_back(i, 0);
    std::vector<int> expected;
    while (!model.empty()) {
      auto [id, turns] = model.front();
      model.pop_front();
      if (id >= first) {
        expected.push_back(id);
        continue;
      }
      if (turns == laps) continue;  // its last turn only returns from the loop
      expected.push_back(id);
      if (id == spawner && turns == spawn_lap)
        for (int j = 0; j < extra; ++j) model.emplace_back(first + j, 0);
      model.emplace_back(id, turns + 1);
    }
    CHECK(order == expected);
  }

  // lifo: the ready_policy interface's example, linking tasks through ready_policy::link().
  class lifo final : public gr::ready_policy {
  public:
    void push(gr::detail::task_ctl* t) noexcept override {
      link(t) = top_;
      top_ = t;
      ++size_;
    }
    gr::detail::task_ctl* pop() noexcept override {
      gr::detail::task_ctl* t = top_;
      if (t) {
        top_ = link(t);
        --size_;
      }
      return t;
    }
    bool empty() const noexcept override { return top_ == nullptr; }
    std::size_t size() const noexcept override { return size_; }

  private:
    gr::detail::task_ctl* top_ = nullptr;
    std::size_t size_ = 0;
  };

  // Each in its own thread: a policy stays set for the rest of its scheduler's life.
  TEST_CASE("a custom policy takes over the queued tasks and decides the order from then on") {
    std::string order;
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      for (char c : std::string("abc")) gr::spawn([&order, c] { order += c; }).detach();
      gr::scheduler::current().set_policy(std::make_unique<lifo>());
      gr::spawn([&order] { order += 'd'; }).detach();
      gr::scheduler::current().run();
    });
    CHECK(order == "dcba");
    CHECK(r.leaks_at_end == "");
    CHECK(r.stacks_kept == 0);
  }

  TEST_CASE("round_robin installed as a custom policy keeps the built-in order") {
    std::string order;
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      gr::scheduler::current().set_policy(std::make_unique<gr::round_robin>());
      order = abc_yield_order();
    });
    CHECK(order == "MabcMabcMabc");
    CHECK(r.leaks_at_end == "");
    CHECK(r.stacks_kept == 0);
  }

  TEST_CASE("set_policy refuses a null policy") {
    CHECK_THROWS_WITH_AS(gr::scheduler::current().set_policy(nullptr), doctest::Contains("null policy"), gr::error);
  }
}
