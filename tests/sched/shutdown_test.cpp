// A thread that ends while its scheduler still has blocked tasks: the scheduler reports them and
// unwinds their stacks (newest first). Each scenario runs on its own std::thread, so its end is a
// real thread exit; an abort or a crash there would take the whole test binary down. Each also
// checks that the unwinding gave every stack back.
#include "test_util.hpp"
#include "thread_check.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <doctest/doctest.h>

#include <mutex>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// on_a_thread_that_ends: runs `scenario` on a thread of its own, which ends with tasks blocked,
// and checks that the thread's exit gave back every stack it mapped.
template <class F>
void on_a_thread_that_ends(F scenario) {
  CHECK(gr_test::on_thread(scenario).stacks_kept == 0);
}

}  // namespace

TEST_SUITE("sched.shutdown") {
  TEST_CASE("a lock handed to a task that is unwound at thread exit is released") {
    gr::mutex m{"shared"};
    on_a_thread_that_ends([&] {
      gr::spawn([&] { std::lock_guard g(m); gr::sleep_for(1h); }, {.name = "holder"}).detach();
      gr::spawn([&] { std::lock_guard g(m); }, {.name = "waiter"}).detach();
      gr::yield();
      gr::yield();
    });
    CHECK_FALSE(m.locked());  // the holder's unwinding handed it to the waiter, whose unwinding let go
  }

  TEST_CASE("a lock handed to a condition_variable waiter re-locking at thread exit is released") {
    // Heap and leaked on failure: a mutex destroyed while locked aborts the whole test binary.
    auto* m = new gr::mutex("shared");
    on_a_thread_that_ends([&] {
      gr::condition_variable cv;
      gr::spawn([&] {
        std::unique_lock lk(*m);
        cv.wait(lk);  // notified, it re-locks: the uninterruptible path
      }, {.name = "waiter"}).detach();
      gr::yield();      // the waiter waits on cv, the mutex free
      m->lock();
      cv.notify_one();
      gr::yield();      // the waiter now waits to re-lock
      m->unlock();      // handed to the waiter, which the thread's exit unwinds before it runs
    });
    CHECK_FALSE(m->locked());
    if (!m->locked()) delete m;
  }

  TEST_CASE("a task waiting on a condition_variable at thread exit unwinds without terminate") {
    bool unwound = false;
    on_a_thread_that_ends([&] {
      gr::spawn([&] {
        struct mark {
          bool& flag;
          ~mark() { flag = true; }
        } m{unwound};
        gr::mutex mu;
        gr::condition_variable cv;
        std::unique_lock lk(mu);
        cv.wait(lk, [] { return false; });
      }, {.name = "consumer"}).detach();
      gr::yield();
    });
    CHECK(unwound);
  }

  TEST_CASE("a task that swallows the unwinding at thread exit and returns ends cleanly") {
    bool caught = false;
    on_a_thread_that_ends([&] {
      gr::spawn([&] {
        try {
          gr::sleep_for(1h);
        } catch (...) {
          caught = true;
        }
      }, {.name = "swallower"}).detach();
      gr::yield();
    });
    CHECK(caught);
  }

  TEST_CASE("stacks go back at thread exit even when the scheduler was made before the stack pool") {
    on_a_thread_that_ends([] {  // which checks that the stacks went back
      gr::yield();  // the scheduler exists before any stack was allocated on this thread
      gr::spawn([] {}).join();
      gr::spawn([] {
        gr::mutex m;
        m.lock();
        gr::mutex other;
        other.lock();
        gr::spawn([&] { other.lock(); }).detach();
        gr::sleep_for(1h);
      }, {.name = "blocked"}).detach();
      gr::yield();
    });
  }

  TEST_CASE("a task handle that outlives its thread is dropped on another thread quietly") {
    // Its frame's greenlet was its thread's, and destroying it elsewhere aborted ("destroyed on
    // another thread"), naming a greenlet the program never made. The thread's end now lets the
    // frame go, and the handle frees it wherever it is dropped.
    const auto before = gr::stack_statistics().live;
    {
      gr::task finished, unwound;
      gr_test::capture_stderr quiet;  // the thread's end lists the task it unwinds
      std::thread([&] {
        finished = gr::spawn([] {}, {.name = "short"});
        unwound = gr::spawn([] { gr::sleep_for(1h); }, {.name = "sleeper"});
        gr::yield();  // "short" ends, "sleeper" sleeps: the thread's end unwinds it
      }).join();
      CHECK(finished.done());
      CHECK(unwound.done());
      CHECK(unwound.name() == "sleeper");
      try {
        finished.join();
        FAIL("join of a task whose thread ended returned");
      } catch (const gr::error& e) {
        CHECK(std::string(e.what()) ==
              "gr::task::join: task #1 'short' belongs to a scheduler that has shut down (its thread ended)");
      }
    }  // both handles dropped here, on this thread
    CHECK(gr::stack_statistics().live == before);  // the stacks became this thread's and went back
  }

  TEST_CASE("a thread_local task handle is dropped after its scheduler at thread exit") {
    // Made before the thread's scheduler, so destroyed after it: the frame's greenlet state was
    // never freed (a leak a thread), or it was destroyed against a freed one.
    on_a_thread_that_ends([] {
      thread_local gr::task kept;
      kept = gr::spawn([] { gr::sleep_for(1h); }, {.name = "kept"});
      gr::yield();
    });
  }

  TEST_CASE("the scheduler's end at thread exit does not read the program's clock") {
    // The README's game loop: a manual_clock local to the thread's function, tasks asleep on it
    // when the function returns. The clock is gone before the scheduler ends (which then read it
    // for its report: a pure virtual call). This clock only counts the reads after its owner's
    // scope, so the test stays well defined where the old code read a dead object.
    struct watched_clock final : gr::clock {
      bool expired = false;
      int late_reads = 0;
      gr::time_point t{};
      gr::time_point now() noexcept override {
        late_reads += expired;
        return t;
      }
      bool wait_until(gr::time_point) override { return false; }
    };
    watched_clock clock;
    int entities_asleep = 0;
    std::thread([&] {  // a plain thread: on_thread's leak check would read the clock at the end
      gr::scheduler::current().set_clock(clock);
      gr::spawn([] { gr::sleep_for(2s); }, {.name = "entity"}).detach();
      gr::scheduler::current().run_once();
      clock.t += 1s;
      gr::scheduler::current().run_once();
      entities_asleep = static_cast<int>(gr::scheduler::current().task_count());
      clock.expired = true;  // as if destroyed: main() has returned
    }).join();
    CHECK(entities_asleep == 1);
    CHECK(clock.late_reads == 0);
  }
}
