// A thread that ends while its scheduler still has blocked tasks: the scheduler reports them and
// unwinds their stacks (newest first). Each scenario runs on its own std::thread, so its end is a
// real thread exit; an abort or a crash there would take the whole test binary down. Each also
// checks that the unwinding gave every stack back. The main thread's end is the process's exit,
// where tasks are left as they are (Go's rule): those scenarios run in a forked child.
#include "child_process.hpp"
#include "test_util.hpp"
#include "thread_check.hpp"

#include <gr/sched/condition_variable.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
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

  TEST_CASE("a task handle that outlives its thread joins or is dropped on another thread") {
    // Its frame's greenlet was its thread's, and destroying it elsewhere aborted ("destroyed on
    // another thread"), naming a greenlet the program never made; join() threw. The thread's end
    // now lets the frame go, and the handle gives the task's outcome, or frees it, on any thread.
    const auto before = gr::stack_statistics().live;
    std::string text;
    // dtor_thread_recorder: notes the thread it is destroyed on (the last copy's wins).
    struct dtor_thread_recorder {
      std::thread::id* out;
      ~dtor_thread_recorder() { *out = std::this_thread::get_id(); }
    };
    std::thread::id callable_died_on, spawner;
    {
      gr::task finished, failed, unwound, never_started, dropped;
      gr_test::capture_stderr err;  // the thread's end lists the tasks it unwinds
      std::thread([&] {
        finished = gr::spawn([] {}, {.name = "short"});
        failed = gr::spawn([] { throw std::runtime_error("lost?"); }, {.name = "failed"});
        unwound = gr::spawn([] { gr::sleep_for(1h); }, {.name = "sleeper"});
        dropped = gr::spawn([] { throw std::runtime_error("nobody joins me"); }, {.name = "dropped"});
        gr::yield();  // they run: "short" ends, "failed" and "dropped" throw, "sleeper" sleeps
        // The thread ends before it runs: its callable is destroyed there, not where the
        // handle goes (its captures are that thread's).
        never_started = gr::spawn([r = dtor_thread_recorder{&callable_died_on}] {}, {.name = "late"});
        spawner = std::this_thread::get_id();
      }).join();
      CHECK(callable_died_on == spawner);
      CHECK(finished.done());
      CHECK(unwound.done());
      CHECK(never_started.done());
      CHECK(unwound.name() == "sleeper");
      CHECK_NOTHROW(finished.join());
      CHECK_THROWS_WITH_AS(failed.join(), "lost?", std::runtime_error);
      CHECK_NOTHROW(unwound.join());
      CHECK_NOTHROW(never_started.join());
      dropped = gr::task();  // dropped here, on this thread: its exception is reported
      text = err.text();
    }
    INFO(text);
    CHECK(gr_test::contains(text, "gr: task 'dropped' (#"));
    CHECK(gr_test::contains(text, "ended with an exception nobody joined: std::runtime_error: nobody joins me"));
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

  TEST_CASE("the process's exit leaves unfinished tasks as they are instead of unwinding them") {
    // Go's `defer wg.Done()` ported: a task's guard calls done() on a wait_group of main()'s.
    // main() gives up waiting and returns; the wait_group is gone before the thread's
    // thread-locals, so unwinding the task then was a use after free (a crash, or an ASan report).
    SUBCASE("main() returns") {
      const gr_test::child_result r = gr_test::run_in_child([] {
        struct done_on_unwind {
          gr::wait_group* wg;
          ~done_on_unwind() {
            std::fputs("unwound\n", stderr);
            wg->done();
          }
        };
        auto* wg = new gr::wait_group(1, "wg");
        auto* never = new gr::semaphore(0, "never");
        gr::spawn([wg, never] {
          done_on_unwind guard{wg};
          never->acquire();
        }, {.name = "worker"}).detach();
        CHECK_FALSE(wg->wait_for(1ms));
        delete wg;  // main()'s locals, destroyed as it returns
        std::exit(0);
      });
      INFO(r.err);
      CHECK(r.exited_with(0));
      CHECK(r.err.find("unwound") == std::string::npos);
      CHECK(r.err.find("gr: the program is exiting with 1 unfinished task(s), left as they are") != std::string::npos);
      CHECK(r.err.find("task #") != std::string::npos);
      CHECK(r.err.find("'worker': blocked, waits to acquire semaphore 'never'") != std::string::npos);
    }
    SUBCASE("a task on another thread calls exit()") {
      // exit() destroys only its own thread's thread-locals: on a thread that is not the main
      // one, the scheduler's end took it for the thread's and unwound the task running it.
      const gr_test::child_result r = gr_test::run_in_child([] {
        std::thread([] {
          gr::semaphore never(0, "never");
          gr::spawn([&] { never.acquire(); }, {.name = "bystander"}).detach();
          gr::spawn([] { std::exit(9); }, {.name = "exiter"}).join();
        }).join();
      });
      INFO(r.err);
      CHECK(r.exited_with(9));
      CHECK(r.err.find("gr: exit() was called in task #") != std::string::npos);
      CHECK(r.err.find("'exiter' with 2 unfinished task(s), left as they are") != std::string::npos);
    }
    SUBCASE("a static object's destructor cancels and joins its task") {
      // A service object of static storage stops its worker when the process ends: the join
      // unwinds the task (its destructors run: it was asked for), as the thread's end once did.
      const gr_test::child_result r = gr_test::run_in_child([] {
        struct service {
          gr::task worker;
          ~service() {
            worker.cancel();
            worker.join();
            std::fputs("service stopped\n", stderr);
          }
        };
        struct says_unwound {
          ~says_unwound() { std::fputs("worker unwound\n", stderr); }
        };
        static service s;
        static gr::semaphore never(0, "never");
        s.worker = gr::spawn([] {
          says_unwound guard;
          never.acquire();
        }, {.name = "worker"});
        gr::yield();
        std::exit(0);
      });
      INFO(r.err);
      CHECK(r.exited_with(0));
      const auto unwound = r.err.find("worker unwound");
      CHECK(unwound != std::string::npos);
      CHECK(r.err.find("service stopped", unwound) != std::string::npos);
    }
    SUBCASE("a task calls exit()") {
      // The thread-locals are destroyed on the task's stack: unwinding it (and freeing that
      // stack) there is what the old end did.
      const gr_test::child_result r = gr_test::run_in_child([] {
        gr::spawn([] { std::exit(7); }, {.name = "exiter"}).join();
      });
      INFO(r.err);
      CHECK(r.exited_with(7));
      CHECK(r.err.find("gr: exit() was called in task #") != std::string::npos);
      CHECK(r.err.find("'exiter': running") != std::string::npos);
    }
  }
}
