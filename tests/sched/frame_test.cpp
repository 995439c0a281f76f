// run_once: one game-loop frame. Each task runnable when the frame starts runs at most once; what
// is spawned or woken during the frame runs in the next one; the thread never blocks.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST_SUITE("sched.frame") {
  TEST_CASE("run_once runs each runnable task once per frame") {
    auto& sched = gr::scheduler::current();
    std::string log;
    for (char c : std::string("abc"))
      gr::spawn([&, c] {
        for (int i = 0; i < 3; ++i) {
          log += c;
          gr::yield();  // back in the next frame
        }
      }).detach();
    std::vector<std::string> frames;
    while (sched.run_once()) {
      frames.push_back(log);
      log.clear();
      REQUIRE(frames.size() < 10);
    }
    // The fourth frame only ends the tasks (their last yield returns) and run_once says so.
    CHECK(frames == std::vector<std::string>{"abc", "abc", "abc"});
    CHECK(log.empty());
  }

  TEST_CASE("a task spawned during a frame runs in the next frame") {
    auto& sched = gr::scheduler::current();
    std::string log;
    gr::spawn([&] {
      log += "parent ";
      gr::spawn([&] { log += "child "; }).detach();
      log += "parent-again ";
    }).detach();
    CHECK(sched.run_once());
    CHECK(log == "parent parent-again ");
    CHECK(!sched.run_once());
    CHECK(log == "parent parent-again child ");
  }

  TEST_CASE("a task woken during a frame runs in the next frame") {
    auto& sched = gr::scheduler::current();
    gr::semaphore sem{0, "sem"};
    std::string log;
    gr::spawn([&] {
      sem.acquire();
      log += "woken ";
    }).detach();
    gr::spawn([&] {
      gr::yield();  // frame 2: the first task is blocked by now
      sem.release();
      log += "waker ";
    }).detach();
    CHECK(sched.run_once());
    CHECK(log.empty());
    CHECK(sched.run_once());
    CHECK(log == "waker ");
    CHECK(!sched.run_once());
    CHECK(log == "waker woken ");
  }

  TEST_CASE("a task that yields n times runs in n plus 1 frames") {
    auto& sched = gr::scheduler::current();
    std::vector<int> ran_in;
    int frame = 0;
    gr::spawn([&] {
      for (int i = 0; i < 4; ++i) {
        ran_in.push_back(frame);
        gr::yield();
      }
    }).detach();
    for (frame = 0; sched.run_once(); ++frame) REQUIRE(frame < 10);
    CHECK(ran_in == std::vector<int>{0, 1, 2, 3});
  }

  TEST_CASE("run_once never blocks the thread") {
    auto& sched = gr::scheduler::current();
    SUBCASE("with a task asleep on a clock that can wait") {
      // A clock whose wait_until would block: run_once must never call it.
      struct refusing_clock final : gr::clock {
        gr::time_point t{};
        gr::time_point now() noexcept override { return t; }
        bool wait_until(gr::time_point tp) override {
          FAIL_CHECK("run_once waited on the clock");
          t = tp;  // and does not hang: the time it waited for has come
          return true;
        }
      };
      gr_test::use_clock<refusing_clock> clk;
      auto t = gr::spawn([] { gr::sleep_for(1h); });
      CHECK(sched.run_once());
      CHECK(sched.run_once());
      t.cancel();
      t.join();
    }
    SUBCASE("with a task blocked for good") {
      gr::semaphore never{0, "never"};
      auto t = gr::spawn([&] { never.acquire(); });
      CHECK(sched.run_once());
      CHECK(sched.run_once());  // no deadlock report from a frame: the loop may still wake it
      never.release();
      CHECK(!sched.run_once());
      t.join();
    }
  }

  TEST_CASE("due timers fire at the start of the frame on a manual clock") {
    gr_test::use_clock<gr::manual_clock> mc;
    auto& sched = gr::scheduler::current();
    std::vector<int> woke_in;
    int frame = 0;
    gr::spawn([&] {
      gr::sleep_for(250ms);
      woke_in.push_back(frame);
      gr::sleep_for(100ms);
      woke_in.push_back(frame);
    }).detach();
    for (frame = 0; sched.run_once(); ++frame) {
      REQUIRE(frame < 100);
      mc->advance(100ms);  // frame n starts at n * 100ms
    }
    CHECK(woke_in == std::vector<int>{3, 4});
    CHECK(frame == 4);
  }

  TEST_CASE("run_once returns whether tasks remain") {
    auto& sched = gr::scheduler::current();
    CHECK(!sched.run_once());
    auto t = gr::spawn([] { gr::yield(); });
    CHECK(sched.run_once());
    CHECK(!t.done());
    CHECK(!sched.run_once());
    CHECK(t.done());
    t.join();
  }

  TEST_CASE("run_once from a task other than main throws gr::error") {
    bool threw = false;
    auto t = gr::spawn([&] {
      try {
        gr::scheduler::current().run_once();
      } catch (const gr::error&) {
        threw = true;
      }
    });
    t.join();
    CHECK(threw);
  }
}
