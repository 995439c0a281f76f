// Misuse the scheduler cannot let pass silently: primitives touched from another thread, a task
// that ends holding a mutex, a task's greenlet switched to by hand, the scheduler driven from a
// plain greenlet, a spawn while the thread's tasks are being unwound, counts that would overflow.
// What can still be thrown is a gr::error; what has already touched another thread's tasks, or
// left a lock nobody can release, ends the process with a message naming the task (checked in a
// forked child).
#include <doctest/doctest.h>

#include "child_process.hpp"
#include "sanitizer_flags.hpp"
#include "test_util.hpp"
#include "thread_check.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <cstddef>
#include <cstdint>
#include <csignal>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <pthread.h>

using gr_test::run_in_child;

TEST_SUITE("sched.misuse") {
#if !GR_TEST_TSAN  // TSan's own pthread_exit fails a CHECK on a fiber's stack before gr sees anything
  TEST_CASE("pthread_exit inside a task ends the process naming the task") {
    const gr_test::child_result r = gr_test::run_in_child([] {
      std::thread([] { gr::spawn([] { ::pthread_exit(nullptr); }, {.name = "quitter"}).join(); }).join();
      ::_exit(5);
    });
    INFO(r.err);
    CHECK(r.died());
    CHECK_FALSE(r.exited_with(5));
    CHECK(r.says("'quitter' (spawned at "));
    CHECK(r.says(") called pthread_exit (or was cancelled by pthread_cancel)"));
  }
#endif

  TEST_CASE("a blocking call in a destructor of a cancelled task names the task in the terminate") {
    // Cancellation is sticky: the destructor's sleep raises again while the task unwinds, and the
    // exception escapes the noexcept destructor. C++'s message named only gr::task_cancelled.
    const gr_test::child_result r = gr_test::run_in_child([] {
      gr::task t = gr::spawn([] {
        struct sleeps_when_destroyed {
          ~sleeps_when_destroyed() { gr::sleep_for(std::chrono::milliseconds(1)); }
        } guard;
        gr::sleep_for(std::chrono::hours(1));
      }, {.name = "stubborn"});
      gr::yield();
      t.cancel();
      t.join();
      ::_exit(5);
    });
    INFO(r.err);
    CHECK(r.died());
    CHECK(r.says("gr: gr::task_cancelled escaped a destructor or a noexcept function in task #"));
    CHECK(r.says("'stubborn' (spawned at "));
    CHECK(r.says("while the task unwinds from its cancel; catch gr::task_cancelled around that call"));
  }

  TEST_CASE("waking a task from another thread ends the process naming the task and what it waits on") {
    SUBCASE("from a thread with no scheduler") {
      const auto r = run_in_child([] {
        gr::wait_group group(1, "group");
        gr::task waiter = gr::spawn([&] { group.wait(); }, {.name = "waiter"});
        gr::scheduler::current().run_once();  // it waits now
        std::thread([&] { group.done(); }).join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("task #"));
      CHECK(r.says("'waiter' of another thread's scheduler, which waits to wait on wait_group 'group'"));
      CHECK(r.says("from a thread that has no scheduler"));
    }
    SUBCASE("from a thread that runs its own scheduler") {
      const auto r = run_in_child([] {
        gr::semaphore permits(0, "permits");
        gr::task waiter = gr::spawn([&] { permits.acquire(); }, {.name = "waiter"});
        gr::scheduler::current().run_once();
        std::thread([&] {
          (void)gr::scheduler::current();
          permits.release();
        }).join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'waiter' of another thread's scheduler, which waits to acquire semaphore 'permits'"));
      CHECK(r.says("of another thread's scheduler"));
      CHECK(r.says("from a thread that runs another scheduler"));
    }
  }

  TEST_CASE("cancelling a task from another thread ends the process naming the task") {
    const auto r = run_in_child([] {
      gr::task sleeper = gr::spawn([] { gr::sleep_for(std::chrono::hours(1)); }, {.name = "sleeper"});
      gr::scheduler::current().run_once();
      std::thread([&] { sleeper.cancel(); }).join();
    });
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("'sleeper' of another thread's scheduler, which waits to sleep"));
    CHECK(r.says("was cancelled from a thread that has no scheduler"));
  }

  TEST_CASE("dropping a task handle on another thread ends the process naming the task") {
    // It raced with the task's own thread (the handle lets go of the task's control block, which
    // that thread's scheduler links and counts), and nothing said so.
    const auto r = run_in_child([] {
      gr::task sleeper = gr::spawn([] { gr::sleep_for(std::chrono::hours(1)); }, {.name = "sleeper"});
      gr::scheduler::current().run_once();
      std::thread([&] { gr::task gone = std::move(sleeper); }).join();
    });
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("'sleeper' of another thread's scheduler, which waits to sleep"));
    CHECK(r.says("was detached (its handle dropped or detached) from a thread that has no scheduler"));
  }

  TEST_CASE("locking a mutex that another thread's task holds throws gr::error naming the holder") {
    // It made a deadlock report on the waiting thread that named the other thread's task as if
    // it were one of its own ("waits to lock mutex (held by task #1)", itself task #1).
    gr::mutex m{"shared"};
    gr::semaphore gate{0};
    gr::task holder = gr::spawn(
        [&] {
          std::lock_guard lock(m);
          gate.acquire();
        },
        {.name = "holder"});
    gr::scheduler::current().run_once();  // it holds the lock now
    std::string message;
    std::thread([&] {
      gr::spawn([&] {
        try {
          m.lock();
          message = "locked";
        } catch (const gr::error& e) {
          message = e.what();
        }
      }).join();
    }).join();
    gate.release();
    holder.join();
    INFO(message);
    CHECK(gr_test::contains(message, "gr::mutex::lock: mutex 'shared' is held by task #"));
    CHECK(gr_test::contains(message, " 'holder' of another thread's scheduler: a gr::mutex belongs to one thread's "
                                     "tasks (between threads, use std::mutex)"));
  }

  TEST_CASE("a task that ends holding a mutex ends the process naming the task and how it ended") {
    SUBCASE("by returning") {
      const auto r = run_in_child([] {
        gr::mutex m("m");
        gr::task holder = gr::spawn([&] { m.lock(); }, {.name = "holder"});
        holder.join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'holder' (spawned at "));
      CHECK(r.says("misuse_test.cpp"));
      CHECK(r.says("ended while holding 1 gr::mutex lock(s)"));
    }
    SUBCASE("by an exception, with a lock handed over to it") {
      const auto r = run_in_child([] {
        gr::mutex m("m");
        m.lock();
        gr::task holder = gr::spawn(
            [&] {
              m.lock();  // waits: main unlocks, handing it over
              throw std::runtime_error("boom");
            },
            {.name = "holder"});
        gr::yield();
        m.unlock();
        holder.join();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("ended by an exception (std::runtime_error: boom) while holding 1 gr::mutex lock(s)"));
    }
    SUBCASE("a task that unlocks on every path ends normally") {
      gr::mutex m("m");
      gr::task t = gr::spawn([&] {
        m.lock();
        m.unlock();
        CHECK(m.try_lock());
        m.unlock();
        std::lock_guard guard(m);
      });
      t.join();
      CHECK(!m.locked());
    }
  }

  TEST_CASE("switching by hand into a waiting task's greenlet ends the process naming the task") {
    const auto r = run_in_child([] {
      gr::semaphore never(0);
      gr::greenlet* g = nullptr;
      gr::task parked = gr::spawn(
          [&] {
            g = gr::greenlet::current();
            never.acquire();
          },
          {.name = "parked"});
      gr::scheduler::current().run_once();
      g->switch_to();
    });
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("task #"));
    CHECK(r.says("'parked' was resumed by a greenlet switch (switch_to, kill, throw_in or inject by hand), not by its "
                 "scheduler (whose current task is the main task)"));
  }

  TEST_CASE("killing or throwing into a waiting task's greenlet by hand ends the process naming the task") {
    enum class how { kill_parked, throw_in_parked, kill_yielding, throw_in_yielding };
    for (how h : {how::kill_parked, how::throw_in_parked, how::kill_yielding, how::throw_in_yielding}) {
      CAPTURE(static_cast<int>(h));
      const auto r = run_in_child([h] {
        gr::semaphore never(0);
        gr::greenlet* g = nullptr;
        gr::task victim = gr::spawn(
            [&] {
              g = gr::greenlet::current();
              if (h == how::kill_yielding || h == how::throw_in_yielding)
                for (;;) gr::yield();
              never.acquire();
            },
            {.name = "victim"});
        gr::task other = gr::spawn([] { gr::yield(); });
        gr::scheduler::current().run_once();
        if (h == how::throw_in_parked || h == how::throw_in_yielding)
          g->throw_in(std::make_exception_ptr(std::runtime_error("by hand")));
        else
          g->kill();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'victim' was resumed by a greenlet switch"));
    }
  }

  TEST_CASE("run_once and run_for and run from a greenlet the main task switched to throw gr::error") {
    auto& sched = gr::scheduler::current();
    int ran = 0;
    gr::task t = gr::spawn([&] { ++ran; });
    std::string errors;
    gr::greenlet g([&](void*) -> void* {
      for (auto call : {+[](gr::scheduler& s) { s.run_once(); }, +[](gr::scheduler& s) { s.run_for(std::chrono::seconds(1)); },
                        +[](gr::scheduler& s) { s.run(); }}) {
        try {
          call(sched);
        } catch (const gr::error& e) {
          errors += e.what();
          errors += '\n';
        }
      }
      return nullptr;
    });
    g.switch_to();
    CHECK(g.dead());
    CHECK(ran == 0);
    CHECK(errors.find("gr::scheduler::run_once: call it from the main task's own greenlet") != std::string::npos);
    CHECK(errors.find("gr::scheduler::run_for: call it") != std::string::npos);
    CHECK(errors.find("gr::scheduler::run: call it") != std::string::npos);
    CHECK(errors.find(g.describe()) != std::string::npos);
    t.join();
    CHECK(ran == 1);
  }

  TEST_CASE("a spawn while the thread's scheduler unwinds its tasks throws gr::error naming the task") {
    std::string message;
    gr_test::capture_stderr quiet;  // the thread's shutdown lists the task it unwinds
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      struct spawns_when_unwound {
        std::string& out;
        ~spawns_when_unwound() {
          try {
            gr::spawn([] {}, {.name = "too late"});
            out = "no error";
          } catch (const gr::error& e) {
            out = e.what();
          }
        }
      };
      gr::task t = gr::spawn([&] {
        spawns_when_unwound guard{message};
        gr::semaphore never(0);
        never.acquire();
      });
      gr::scheduler::current().run_once();
      t.detach();
    });
    CHECK(quiet.text().find("unwinding them") != std::string::npos);
    quiet.restore();
    CHECK(r.stacks_kept == 0);  // the refused task's stack too
    CHECK(message.find("gr::spawn: the task 'too late' spawned at ") != std::string::npos);
    CHECK(message.find("misuse_test.cpp") != std::string::npos);
    CHECK(message.find("would never run: its thread's scheduler is unwinding its tasks") != std::string::npos);
  }

  TEST_CASE("a task whose catch-all swallows its cancel in a loop ends the process naming it") {
    // `for (;;) try { recv(); } catch (...) {}`: every call raises at once (cancellation is
    // sticky), so the task spun forever, starving its thread, and join() or the thread's end
    // never came.
    auto server = [](gr::semaphore& jobs) {
      for (;;) {
        try {
          jobs.acquire();
        } catch (...) {  // "log and keep serving"
        }
      }
    };
    SUBCASE("cancelled and joined") {
      const auto r = run_in_child([&] {
        gr::semaphore jobs(0, "jobs");
        gr::task t = gr::spawn([&] { server(jobs); }, {.name = "server"});
        gr::scheduler::current().run_once();
        t.cancel();
        t.join();
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("'server' (spawned at "));  // its id depends on the tasks spawned before the fork
      CHECK(r.says("misuse_test.cpp"));
      CHECK(r.says("has caught gr::task_cancelled 100000 times and goes on running (it was cancelled)"));
      CHECK(r.says("rethrow it (catch (...) { ...; throw; })"));
    }
    SUBCASE("unwound at thread exit") {
      const auto r = run_in_child([&] {
        static gr::semaphore* jobs = new gr::semaphore(0, "jobs");  // outlives the thread's tasks
        std::thread([&] {
          gr::spawn([&] { server(*jobs); }, {.name = "server"}).detach();
          gr::yield();
        }).join();
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("goes on running (its thread is ending and unwinds it)"));
    }
  }

  TEST_CASE("semaphore and wait_group counts refuse to overflow and change nothing") {
    constexpr auto max = std::numeric_limits<std::ptrdiff_t>::max();
    gr::semaphore permits(5, "permits");
    CHECK(gr::semaphore::max() == max);
    CHECK_THROWS_WITH_AS(permits.release(max), doctest::Contains("would overflow the count of semaphore 'permits'"),
                         gr::error);
    CHECK(permits.available() == 5);
    CHECK_NOTHROW(permits.release(max - 5));
    CHECK(permits.available() == max);
    CHECK_THROWS_AS(permits.release(), gr::error);

    gr::wait_group group(1, "group");
    CHECK_THROWS_WITH_AS(group.add(max), doctest::Contains("the counter of wait_group 'group' would overflow"),
                         gr::error);
    CHECK_THROWS_WITH_AS(group.add(-2), doctest::Contains("would go negative"), gr::error);
    CHECK_NOTHROW(group.add(max - 1));
    CHECK_NOTHROW(group.add(-max));
    CHECK(group.wait_for(std::chrono::seconds(0)));
  }

  TEST_CASE("a primitive destroyed while tasks wait on it ends the process naming them") {
    SUBCASE("semaphore") {
      const auto r = run_in_child([] {
        auto gate = std::make_unique<gr::semaphore>(0, "gate");
        gr::spawn([&] { gate->acquire(); }, {.name = "entrant"}).detach();
        gr::scheduler::current().run_once();
        gate.reset();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("semaphore 'gate' destroyed while tasks wait on it:\n  task #"));
      CHECK(r.says("'entrant' (spawned at "));
      CHECK(r.says("which waits to acquire semaphore 'gate'"));
    }
    SUBCASE("mutex held by a task and waited for") {
      const auto r = run_in_child([] {
        auto m = std::make_unique<gr::mutex>("shared");
        gr::spawn([&] {
          m->lock();
          gr::yield();  // the main task destroys the mutex now
          m->unlock();
        }, {.name = "holder"}).detach();
        gr::spawn([&] { m->lock(); }, {.name = "waiter"}).detach();
        gr::scheduler::current().run_once();
        m.reset();
      });
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("mutex 'shared' destroyed while locked, and tasks wait for it:\n  task #"));
      CHECK(r.says("'waiter' (spawned at "));
      CHECK(r.says("which waits to lock mutex 'shared' (held by task #"));
    }
  }

  TEST_CASE("a parentless greenlet that ends inside a task names the cause and the fix") {
    // Its parent is the thread's root, the main task's greenlet, which waits in join(): the
    // greenlet's end switches there behind the scheduler's back (python-greenlet's default parent
    // would be the current greenlet; gr follows cgreenlet and DESIGN.md: the root).
    const auto r = run_in_child([] {
      gr::spawn([] {
        gr::greenlet gen([](void*) -> void* { return nullptr; });
        gen.switch_to();
      }, {.name = "generator user"}).join();
    });
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("the main task was resumed by a greenlet switch"));
    CHECK(r.says("inside a task, make it with gr::greenlet::current() as parent"));

    // With that parent it works.
    int got = 0;
    gr::spawn([&] {
      gr::greenlet gen([](void* a) -> void* { return a; }, gr::greenlet::current());
      got = static_cast<int>(reinterpret_cast<std::intptr_t>(gen.switch_to(reinterpret_cast<void*>(7))));
    }).join();
    CHECK(got == 7);
  }
}
