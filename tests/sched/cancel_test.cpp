// Cancellation: where task_cancelled is raised, that it is sticky, and what a cancelled task
// keeps or gives back.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using gr_test::contains;

namespace {

struct set_on_destroy {
  bool& flag;
  ~set_on_destroy() { flag = true; }
};

// waiting_of: what the snapshot says task `id` waits on ("" if it is not blocked).
std::string waiting_of(std::uint64_t id) {
  for (const auto& i : gr::scheduler::current().snapshot())
    if (i.id == id) return i.state == "blocked" ? i.waiting : "(" + i.state + ")";
  return "(gone)";
}

}  // namespace

TEST_SUITE("sched.cancel") {
  TEST_CASE("cancel raises task_cancelled at the blocking call and destructors run") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    gr::semaphore sem{0, "sem"};
    gr::wait_group wg{1, "wg"};
    auto other = gr::spawn([] { gr::sleep_for(1h); }, {.name = "other"});
    std::unique_lock<gr::mutex> held(m, std::defer_lock);
    std::function<void()> block;
    std::string waits_on;

    SUBCASE("sleep_for") {
      block = [] { gr::sleep_for(1h); };
      waits_on = "sleep";
    }
    SUBCASE("join") {
      block = [&] { other.join(); };
      waits_on = "join task 'other'";
    }
    SUBCASE("join_for") {
      block = [&] { (void)other.join_for(1h); };
      waits_on = "join task 'other'";
    }
    SUBCASE("mutex lock") {
      held.lock();
      block = [&] { m.lock(); };
      waits_on = "lock mutex 'm'";
    }
    SUBCASE("mutex try_lock_for") {
      held.lock();
      block = [&] { (void)m.try_lock_for(1h); };
      waits_on = "lock mutex 'm'";
    }
    SUBCASE("condition_variable wait") {
      block = [&] {
        std::unique_lock l(m);
        cv.wait(l);
      };
      waits_on = "wait on condition_variable 'cv'";
    }
    SUBCASE("condition_variable wait_for") {
      block = [&] {
        std::unique_lock l(m);
        (void)cv.wait_for(l, 1h, [] { return false; });
      };
      waits_on = "wait on condition_variable 'cv'";
    }
    SUBCASE("semaphore acquire") {
      block = [&] { sem.acquire(); };
      waits_on = "acquire semaphore 'sem'";
    }
    SUBCASE("semaphore try_acquire_for") {
      block = [&] { (void)sem.try_acquire_for(1h); };
      waits_on = "acquire semaphore 'sem'";
    }
    SUBCASE("wait_group wait") {
      block = [&] { wg.wait(); };
      waits_on = "wait on wait_group 'wg'";
    }
    SUBCASE("wait_group wait_for") {
      block = [&] { (void)wg.wait_for(1h); };
      waits_on = "wait on wait_group 'wg'";
    }

    bool destroyed = false, raised = false, returned = false;
    auto victim = gr::spawn(
        [&] {
          set_on_destroy guard{destroyed};
          try {
            block();
            returned = true;
          } catch (const gr::task_cancelled&) {
            raised = true;
            throw;
          }
        },
        {.name = "victim"});
    gr::yield();  // `other` and `victim` run and block
    CHECK(contains(waiting_of(victim.id()), waits_on));
    victim.cancel();
    CHECK(victim.cancelled());
    CHECK(!destroyed);  // the cancel only woke it; it unwinds when it runs
    victim.join();      // a task ended by cancellation joins normally
    CHECK(raised);
    CHECK(destroyed);
    CHECK(!returned);
    if (held.owns_lock()) held.unlock();
    CHECK(!m.locked());
    CHECK(other.joinable());  // a cancelled joiner leaves the joined task alone
    other.cancel();
    other.join();
  }

  TEST_CASE("a task cancelled before it starts never runs its function") {
    bool ran = false, callable_gone = false;
    auto t = gr::spawn([&ran, g = std::make_shared<set_on_destroy>(callable_gone)] { ran = true; });
    t.cancel();
    t.join();
    CHECK(!ran);
    CHECK(callable_gone);
  }

  TEST_CASE("cancellation is sticky") {
    gr::mutex m{"m"};
    gr::condition_variable cv;
    gr::semaphore sem{5};
    gr::wait_group zero;
    auto finished = gr::spawn([] {});
    std::vector<std::string> raised_by;
    bool nonblocking_ok = false;
    auto t = gr::spawn([&] {
      try {
        gr::sleep_for(1h);
      } catch (const gr::task_cancelled&) {
        raised_by.push_back("first sleep");
      }
      CHECK(gr::this_task::cancelled());
      // Every later blocking call raises at once, even those that would not have to wait.
      const std::pair<const char*, std::function<void()>> calls[] = {
          {"sleep_for 0", [] { gr::sleep_for(0s); }},
          {"sleep_for", [] { gr::sleep_for(1s); }},
          {"free mutex", [&] { m.lock(); }},
          {"semaphore with permits", [&] { sem.acquire(); }},
          {"wait_group at zero", [&] { zero.wait(); }},
          {"join of a finished task", [&] { finished.join(); }},
          {"condition_variable", [&] {
             std::unique_lock l(m, std::try_to_lock);  // try_lock is no cancellation point
             CHECK(l.owns_lock());
             cv.wait(l);
           }},
          {"yield", [] { gr::yield(); }},
      };
      for (const auto& [what, call] : calls) {
        try {
          call();
        } catch (const gr::task_cancelled&) {
          raised_by.push_back(what);
        }
      }
      nonblocking_ok = m.try_lock() && sem.try_acquire();
      m.unlock();
      sem.release();
    });
    gr::yield();
    t.cancel();
    t.join();
    CHECK(raised_by == std::vector<std::string>{"first sleep", "sleep_for 0", "sleep_for", "free mutex",
                                                 "semaphore with permits", "wait_group at zero",
                                                 "join of a finished task", "condition_variable", "yield"});
    CHECK(nonblocking_ok);
    CHECK(finished.joinable());
    finished.join();
  }

  TEST_CASE("cancel reaches a runnable task at its next yield or blocking call") {
    // An entity that waits frames with yield() (examples/game_loop.cpp) stops when cancelled.
    int steps = 0;
    auto t = gr::spawn([&] {
      gr::yield();
      ++steps;  // runs: the cancel came while it waited in the ready queue, and that yield returns
      gr::yield();
      ++steps;
      gr::sleep_for(1h);
      ++steps;
    });
    gr::yield();  // t yields once
    t.cancel();
    t.join();
    CHECK(steps == 1);
  }

  TEST_CASE("a cancelled task counts as finished") {
    auto t = gr::spawn([] { gr::sleep_for(1h); });
    gr::yield();
    CHECK(gr::scheduler::current().task_count() == 1);
    t.cancel();
    CHECK(!t.done());
    gr::scheduler::current().run();  // returns: the task ended
    CHECK(t.done());
    CHECK(gr::scheduler::current().task_count() == 0);
    CHECK_NOTHROW(t.join());
  }

  TEST_CASE("cancel of a finished task does nothing") {
    auto t = gr::spawn([] {});
    gr::yield();
    CHECK(t.done());
    t.cancel();
    CHECK(!t.cancelled());
    CHECK_NOTHROW(t.join());
    gr::task empty;
    empty.cancel();
    CHECK(!empty.cancelled());
  }

  TEST_CASE("a cancelled waiter that was handed what it waited for keeps it") {
    // The hand-off (signaled) wins over the cancel that woke it first; the cancel stays sticky.
    gr::mutex m{"m"};
    gr::semaphore sem{0, "sem"};
    bool got = false, sticky = false;
    std::function<void()> wait_for_it, give_back;
    std::function<void()> hand_over;
    int permits_after = 0;
    SUBCASE("mutex") {
      m.lock();
      wait_for_it = [&] { m.lock(); };
      give_back = [&] { m.unlock(); };
      hand_over = [&] { m.unlock(); };
    }
    SUBCASE("semaphore") {
      wait_for_it = [&] { sem.acquire(); };
      give_back = [&] { sem.release(); };
      hand_over = [&] { sem.release(); };
      permits_after = 1;  // the permit it was handed, given back
    }
    auto t = gr::spawn([&] {
      wait_for_it();
      got = true;
      give_back();
      try {
        gr::sleep_for(1h);
      } catch (const gr::task_cancelled&) {
        sticky = true;
      }
    });
    gr::yield();  // t blocks
    t.cancel();   // wakes it...
    hand_over();  // ...but before it runs, the thing it waited for is handed to it
    t.join();
    CHECK(got);
    CHECK(sticky);
    CHECK(!m.locked());
    CHECK(sem.available() == permits_after);
  }

  TEST_CASE("a task cancelled in a condition_variable wait unwinds holding the mutex") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    bool held_while_unwinding = false;
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      try {
        cv.wait(l);
      } catch (const gr::task_cancelled&) {
        held_while_unwinding = l.owns_lock() && m.locked();
        throw;
      }
    });
    gr::yield();  // t waits on cv
    SUBCASE("with the mutex free") {
      t.cancel();
    }
    SUBCASE("while another task holds the mutex") {
      m.lock();
      t.cancel();
      gr::yield();  // t wakes and must wait to take the mutex back, cancelled or not
      CHECK(waiting_of(t.id()) == "lock mutex 'm' (held by the main task)");
      CHECK(!t.done());
      m.unlock();
    }
    t.join();
    CHECK(held_while_unwinding);
    CHECK(!m.locked());
  }

  TEST_CASE("a notified waiter cancelled while it takes the mutex back returns normally") {
    gr::mutex m{"m"};
    gr::condition_variable cv{"cv"};
    bool returned_locked = false, sticky = false;
    auto t = gr::spawn([&] {
      std::unique_lock l(m);
      cv.wait(l);
      returned_locked = l.owns_lock() && m.locked();
      l.unlock();
      try {
        gr::sleep_for(1h);
      } catch (const gr::task_cancelled&) {
        sticky = true;
      }
    });
    gr::yield();
    {
      std::lock_guard g(m);
      cv.notify_one();
      gr::yield();  // t wakes, parks taking the mutex back
      t.cancel();
      gr::yield();
    }
    t.join();
    CHECK(returned_locked);
    CHECK(sticky);
  }
}
