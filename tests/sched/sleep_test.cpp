// Sleeping and the clocks: the timer heap's order, virtual and steady time, run_for.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using gr_test::at;

TEST_SUITE("sched.sleep") {
  TEST_CASE("sleeping tasks wake in deadline order under a virtual clock") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::string log;
    std::vector<gr::time_point> woke;
    std::vector<gr::task> tasks;
    for (int s : {3, 1, 4, 2, 5})
      tasks.push_back(gr::spawn([&, s] {
        gr::sleep_for(std::chrono::seconds(s));
        log += std::to_string(s);
        woke.push_back(gr::now());
      }));
    gr::scheduler::current().run();
    CHECK(log == "12345");
    CHECK(woke == std::vector<gr::time_point>{at(1s), at(2s), at(3s), at(4s), at(5s)});
    CHECK(vc.elapsed() == 5s);
    for (auto& t : tasks) t.join();
  }

  TEST_CASE("equal deadlines wake in the order they were armed") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::string log;
    for (char c : std::string("abcdef"))
      gr::spawn([&, c] {
        gr::sleep_until(at(1s));
        log += c;
      }).detach();
    gr::scheduler::current().run();
    CHECK(log == "abcdef");
  }

  TEST_CASE("a sleep never wakes before its deadline") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::vector<gr::duration> late;
    for (int i = 0; i < 50; ++i)
      gr::spawn([&, i] {
        const auto d = std::chrono::milliseconds((i * 37) % 101);
        for (int k = 0; k < 3; ++k) {
          const gr::time_point deadline = gr::now() + d;
          gr::sleep_until(deadline);
          late.push_back(gr::now() - deadline);
        }
      }).detach();
    gr::scheduler::current().run();
    REQUIRE(late.size() == 150);
    for (auto l : late) CHECK(l == gr::duration::zero());  // virtual time lands exactly on it
  }

  TEST_CASE("a sleep until a passed deadline returns without switching") {
    gr_test::use_clock<gr::virtual_clock> vc;
    vc->advance(10s);
    std::string log;
    auto a = gr::spawn([&] {
      log += 'a';
      gr::sleep_until(at(5s));
      gr::sleep_for(0s);
      gr::sleep_for(-1s);
      log += 'a';
    });
    auto b = gr::spawn([&] { log += 'b'; });
    a.join();
    b.join();
    CHECK(log == "aab");
    CHECK(vc.elapsed() == 10s);
  }

  TEST_CASE("virtual time moves only when nothing is runnable") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::string log;
    auto sleeper = gr::spawn([&] {
      gr::sleep_for(1ms);
      log += 's';
    });
    auto busy = gr::spawn([&] {
      for (int i = 0; i < 200; ++i) {
        log += 'y';
        gr::yield();
      }
      CHECK(gr::now() == at(0s));
    });
    sleeper.join();
    busy.join();
    CHECK(log == std::string(200, 'y') + 's');
  }

  TEST_CASE("the main task sleeps on the scheduler's clock") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::sleep_for(90min);
    CHECK(vc.elapsed() == 90min);
    gr::sleep_until(at(2h));
    CHECK(gr::now() == at(2h));
    CHECK(gr::scheduler::current().now() == at(2h));
  }

  TEST_CASE("a clock that wakes before the deadline is waited on again") {
    // Each wait_until moves at most 300 ms and says it waited, as a thread woken early (by a
    // signal, say) would: the scheduler must look at its timers and wait again until one is due.
    struct early_clock final : gr::clock {
      gr::time_point t{};
      std::vector<gr::time_point> asked;
      gr::time_point now() noexcept override { return t; }
      bool wait_until(gr::time_point tp) override {
        asked.push_back(tp);
        t = std::min(tp, t + 300ms);
        return true;
      }
    };
    gr_test::use_clock<early_clock> clk;
    gr::time_point woke{};
    auto sleeper = gr::spawn([&] {
      gr::sleep_for(1s);
      woke = gr::now();
    });
    sleeper.join();
    CHECK(woke == at(1s));
    CHECK(clk->asked == std::vector<gr::time_point>(4, at(1s)));  // from 0, 300, 600 and 900 ms
  }

  TEST_CASE("a sleep on the steady clock takes real time") {
    const auto start = std::chrono::steady_clock::now();
    auto t = gr::spawn([] { gr::sleep_for(20ms); });
    gr::sleep_for(5ms);
    const auto mid = std::chrono::steady_clock::now();
    t.join();
    const auto end = std::chrono::steady_clock::now();
    CHECK(mid - start >= 5ms);
    CHECK(end - start >= 20ms);  // no upper bound: a loaded machine may take any time
  }

  TEST_CASE("a due timer fires within 64 yields while another task keeps yielding") {
    // yield() looks at the timers on every 64th call, so a task that only yields cannot starve a
    // due timer. On a manual clock the deadline passes when the spinner moves it, and the spinner
    // never leaves the scheduler idle: only yield() can fire the timer.
    gr_test::use_clock<gr::manual_clock> mc;
    bool woke = false;
    auto sleeper = gr::spawn([&] {
      gr::sleep_for(1s);
      woke = true;
    });
    constexpr int bound = 10'000;  // a broken yield stops here instead of spinning for good
    int spins = 0;
    auto spinner = gr::spawn([&] {
      mc->advance(2s);  // the sleeper is parked by now: its deadline has passed
      while (!woke && spins < bound) {
        ++spins;
        gr::yield();
      }
    });
    spinner.join();
    if (!woke) FAIL_CHECK("the sleeper did not wake in " << bound << " yields");
    CHECK(spins <= 64);
    sleeper.join();  // the main task parks: the scheduler fires the timer if yield never did
  }

  TEST_CASE("run_for runs until its budget is spent") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::string log;
    for (int s : {1, 2, 3, 10})
      gr::spawn([&, s] {
        gr::sleep_for(std::chrono::seconds(s));
        log += std::to_string(s) + ' ';
      }).detach();
    auto& sched = gr::scheduler::current();
    CHECK(sched.run_for(5s));  // tasks remain
    CHECK(log == "1 2 3 ");
    CHECK(vc.elapsed() == 3s);  // the next deadline is past the budget: the clock is not moved there
    CHECK(sched.task_count() == 1);
    CHECK(!sched.run_for(1h));
    CHECK(log == "1 2 3 10 ");
    CHECK(vc.elapsed() == 10s);
  }

  TEST_CASE("run_for on a manual clock returns when only timers remain") {
    gr_test::use_clock<gr::manual_clock> mc;
    bool woke = false;
    gr::spawn([&] {
      gr::sleep_for(1s);
      woke = true;
    }).detach();
    auto& sched = gr::scheduler::current();
    CHECK(sched.run_for(10s));  // the manual clock cannot get there by itself
    CHECK(!woke);
    CHECK(mc.elapsed() == 0s);
    mc->advance(1s);
    CHECK(!sched.run_for(0s));
    CHECK(woke);
  }

  TEST_CASE("run_for on a manual clock nobody advances runs one frame while a task keeps yielding") {
    // The budget is clock time: on a manual clock nobody advances it would never be spent (run_for
    // spun for good). A virtual clock moves when every task waits: yielding tasks run on, as in
    // run(). The spinner stops on its own after `bound` frames, so the old behaviour fails the
    // check instead of hanging.
    constexpr int bound = 1000;
    auto frames_of_one_run_for = [&](auto& clock_guard) {
      (void)clock_guard;
      int steps = 0;
      gr::spawn([&] {
        while (steps < bound) {
          ++steps;
          gr::yield();
        }
      }).detach();
      gr::scheduler::current().run_for(16ms);
      const int frames = steps;
      gr::scheduler::current().run();
      return frames;
    };
    SUBCASE("manual clock") {
      gr_test::use_clock<gr::manual_clock> mc;
      CHECK(frames_of_one_run_for(mc) == 1);
    }
    SUBCASE("virtual clock") {
      gr_test::use_clock<gr::virtual_clock> vc;
      CHECK(frames_of_one_run_for(vc) == bound);
    }
  }

  TEST_CASE("run_for on a virtual clock runs past frames that wake tasks") {
    // Each release wakes a task behind the main task: it is still queued when a frame ends, and
    // virtual time has not moved. run_for must go on to the sleep and the budget.
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::semaphore items{0, "items"};
    int got = 0;
    bool slept = false;
    gr::spawn([&] {
      for (int i = 0; i < 10; ++i) {
        items.release();  // wakes the taker: queued behind the main task, for the next frame
        gr::yield();
      }
      gr::sleep_for(2s);
      slept = true;
    }).detach();
    gr::spawn([&] {
      for (int i = 0; i < 10; ++i) {
        items.acquire();
        ++got;
      }
    }).detach();
    CHECK_FALSE(gr::scheduler::current().run_for(5s));
    CHECK(got == 10);
    CHECK(slept);
    CHECK(vc.elapsed() == 2s);
    gr::scheduler::current().run();  // (had run_for stopped early, the semaphore would die waited on)
  }

  TEST_CASE("run_for on a manual clock that a task advances runs until the budget is spent") {
    gr_test::use_clock<gr::manual_clock> mc;
    int steps = 0;
    bool stop = false;
    gr::spawn([&] {
      while (!stop) {
        ++steps;
        mc->advance(1ms);  // the frame's time, as a fixed-step game loop would move it
        gr::yield();
      }
    }).detach();
    auto& sched = gr::scheduler::current();
    CHECK(sched.run_for(5ms));
    CHECK(steps == 5);
    CHECK(mc.elapsed() == 5ms);
    CHECK(sched.task_count() == 1);
    stop = true;
    sched.run();
  }
}
