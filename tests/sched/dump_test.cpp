// gr::dump and gr::dump_on_signal: the task dump, and the report of a scheduler destroyed with
// tasks alive, which prints the same lines.
#include <doctest/doctest.h>

#include "child_process.hpp"
#include "sanitizer_flags.hpp"
#include "test_util.hpp"
#include "thread_check.hpp"

#include <gr/sched/dump.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/trace.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <pthread.h>
#include <unistd.h>


using namespace std::chrono_literals;
using gr_test::contains;

namespace {

std::string dump_text() {
  std::ostringstream os;
  gr::dump(os);
  return os.str();
}

// line_of: the dump's line for the task named `name` ("" if none).
std::string line_of(const std::string& dump, const std::string& name) {
  const auto at = dump.find("'" + name + "'");
  if (at == std::string::npos) return {};
  const auto begin = dump.rfind('\n', at) + 1;
  return dump.substr(begin, dump.find('\n', at) - begin);
}

// read_file: the whole file at `path` ("" if there is none).
std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// deep_then_sleep: takes about `kib` KiB of stack, then sleeps at that depth.
[[gnu::noinline]] void deep_then_sleep(int kib) {
  volatile char pad[1024];
  pad[0] = static_cast<char>(kib);
  if (kib > 1)
    deep_then_sleep(kib - 1);
  else
    gr::sleep_for(1s);
  (void)pad[0];
}

}  // namespace

TEST_SUITE("sched.dump") {
  TEST_CASE("a dump prints every task with its state wait spawn site age switches and stack use") {
    gr_test::use_clock<gr::virtual_clock> vc;
    gr::mutex m{"vault"};
    std::unique_lock held(m);
    auto sleeper = gr::spawn([] { gr::sleep_for(5s); }, {.name = "sleeper"});
    auto locker = gr::spawn([&] { std::lock_guard g(m); }, {.name = "locker"});
    auto ready = gr::spawn([] {}, {.name = "ready"});
    auto unnamed = gr::spawn([&] { sleeper.join(); });
    gr::yield();  // sleeper, locker and unnamed block; ready finishes

    const std::string d = dump_text();
    INFO(d);
    CHECK(contains(d, "gr: 5 task(s) on this thread's scheduler\n"));
    CHECK(contains(d, "  task #0 'main': running, switches "));
    const std::string s = line_of(d, "sleeper");
    const auto id = [](const gr::task& t) { return "task #" + std::to_string(t.id()); };
    CHECK(contains(s, id(sleeper) + " 'sleeper': blocked, waits to sleep (deadline in 5000.000 ms)"));
    CHECK(contains(s, ", spawned at "));
    CHECK(contains(s, "dump_test.cpp:"));
    CHECK(contains(s, ", age 0.000 s, switches 1, stack "));
    CHECK(contains(s, " KiB now, "));
    CHECK(contains(s, " KiB peak of 256 KiB"));
    CHECK(contains(line_of(d, "locker"), id(locker) + " 'locker': blocked, waits to lock mutex 'vault' (held by the main task), spawned at"));
    CHECK(contains(line_of(d, "ready"), id(ready) + " 'ready': done, spawned at"));
    CHECK(contains(d, "  " + id(unnamed) + ": blocked, waits to join task 'sleeper' (#" + std::to_string(sleeper.id()) +
                          "), spawned at"));

    held.unlock();
    locker.join();
    ready.join();
    unnamed.join();  // after the sleeper, which it joins
  }

  TEST_CASE("a dump between a deadline and its timer firing says how long ago it passed") {
    // It printed "deadline in -0.216 ms" when taken after the idle wait, before the timers fired.
    gr::manual_clock clock;
    gr::scheduler::current().set_clock(clock);
    auto sleeper = gr::spawn([] { gr::sleep_for(1s); }, {.name = "late"});
    gr::scheduler::current().run_once();  // it sleeps
    clock.advance(1500ms);                // due, not yet fired
    const std::string d = dump_text();
    INFO(d);
    CHECK(contains(line_of(d, "late"), "'late': blocked, waits to sleep (deadline passed 500.000 ms ago)"));
    gr::scheduler::current().run_once();  // fires it
    sleeper.join();
    gr::scheduler::current().reset_clock();
  }

  TEST_CASE("a dump measures the stack a blocked task uses now and at its deepest") {
    gr_test::use_clock<gr::virtual_clock> vc;
    auto deep = gr::spawn([] { deep_then_sleep(40); }, {.name = "deep"});
    auto shallow = gr::spawn([] { gr::sleep_for(1s); }, {.name = "shallow"});
    gr::yield();
    int found = 0;  // the loop checks only the tasks it finds: both must be there
    for (const auto& t : gr::scheduler::current().snapshot()) {
      if (t.name == "deep") {
        ++found;
        CHECK(t.stack_used > 40 * 1024);
        CHECK(t.stack_peak >= t.stack_used);
        CHECK(t.stack_peak <= t.stack_size);
      } else if (t.name == "shallow") {
        ++found;
        CHECK(t.stack_used > 0);
        CHECK(t.stack_used < 8 * 1024);
      }
    }
    CHECK(found == 2);
    const std::string line = line_of(dump_text(), "deep");
    INFO(line);
    CHECK(contains(line, " KiB now, "));
    deep.join();
    shallow.join();
  }

  TEST_CASE("dump to a file descriptor writes the same text as dump to a stream") {
    gr_test::use_clock<gr::virtual_clock> vc;
    auto sleeper = gr::spawn([] { gr::sleep_for(1s); }, {.name = "fd sleeper"});
    gr::yield();
    std::FILE* f = std::tmpfile();
    REQUIRE(f);
    gr::dump(::fileno(f));
    std::rewind(f);
    std::string from_fd;
    char buf[512];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) from_fd.append(buf, n);
    std::fclose(f);
    CHECK(from_fd == dump_text());
    CHECK(contains(from_fd, "'fd sleeper': blocked, waits to sleep"));
    sleeper.join();
  }

  TEST_CASE("after dump_on_signal the signal prints the dump on stderr at the next switch") {
    gr::dump_on_signal(SIGUSR1);
    std::string before, after, later;
    {
      gr_test::capture_stderr err;
      auto a = gr::spawn([] { gr::yield(); }, {.name = "ping"});
      auto b = gr::spawn([] { gr::yield(); }, {.name = "pong"});
      std::raise(SIGUSR1);
      before = err.text();  // the handler only sets a flag
      gr::yield();          // switches: the first one prints
      after = err.text();
      a.join();
      b.join();
      later = err.text();
    }
    std::signal(SIGUSR1, SIG_DFL);
    INFO(after);
    CHECK(before.empty());
    CHECK(contains(after, "gr: 3 task(s) on this thread's scheduler\n"));
    CHECK(contains(after, "task #0 'main': "));
    CHECK(contains(after, "'ping': "));
    CHECK(contains(after, "'pong': "));
    CHECK(later == after);  // once per signal
  }

  TEST_CASE("a task that yields alone in a loop prints the dump a signal asked for") {
    // Its yields switch to nothing, so there is no event at which to print; it printed never.
    gr::dump_on_signal(SIGUSR1);
    std::string text;
    {
      gr_test::capture_stderr err;
      auto loner = gr::spawn(
          [&] {
            std::raise(SIGUSR1);
            for (int i = 0; i < 3; ++i) gr::yield();
            text = err.text();
          },
          {.name = "loner"});
      loner.join();
    }
    std::signal(SIGUSR1, SIG_DFL);
    INFO(text);
    CHECK(contains(text, "'loner': running"));
  }

  TEST_CASE("a signal while the scheduler sleeps until a timer prints the dump before it sleeps again") {
    // The only task sleeps (an hour, on the steady clock) and the main task joins it: the thread
    // sleeps in the steady clock's wait. The signal must cut that wait short and the dump come out
    // then, not when the timer fires. The clock below is the steady clock, except that its second
    // wait (the scheduler waiting again) records whether the dump is out yet and then ends the
    // test by moving its time two hours on. Its first wait is capped at 5 s: the old wait slept
    // through the signal, so without the fix the test fails after 5 s instead of hanging.
    struct steady_once final : gr::clock {
      gr::steady_clock_source steady;
      gr::duration offset{};
      std::atomic<bool> waiting{false};  // the first wait has begun: a signal now is one in the wait
      std::atomic<bool> first_wait_over{false};
      int waits = 0;
      std::function<bool()> dumped;
      bool dumped_before_second_wait = false;
      gr::time_point now() noexcept override { return steady.now() + offset; }
      bool wait_until(gr::time_point tp) override {
        if (++waits == 1) {
          waiting = true;
          steady.wait_until(std::min(tp - offset, steady.now() + 5s));
          first_wait_over = true;
          return true;
        }
        dumped_before_second_wait = dumped();
        offset = 2h;
        return true;
      }
    };
    static steady_once clock;  // static: a failed check must not leave a dangling clock installed
    gr::dump_on_signal(SIGUSR1);
    std::string text;
    {
      gr_test::capture_stderr err;
      clock.dumped = [&] { return contains(err.text(), "'hour sleeper': blocked, waits to sleep"); };
      gr::scheduler::current().set_clock(clock);
      auto sleeper = gr::spawn([] { gr::sleep_for(1h); }, {.name = "hour sleeper"});
      const pthread_t scheduler_thread = ::pthread_self();
      // Signals start once the scheduler is in its wait (one sent earlier would be printed at the
      // main task's switch, which the old code did too), and go on until the wait is over, in case
      // one came between the flag and the sleep.
      std::thread signaller([&] {
        while (!clock.waiting) std::this_thread::sleep_for(1ms);
        while (!clock.first_wait_over) {
          ::pthread_kill(scheduler_thread, SIGUSR1);
          std::this_thread::sleep_for(10ms);
        }
      });
      sleeper.join();
      signaller.join();
      gr::scheduler::current().reset_clock();
      text = err.text();
    }
    std::signal(SIGUSR1, SIG_DFL);
    INFO(text);
    CHECK(clock.waits == 2);
    CHECK(clock.dumped_before_second_wait);
  }

  TEST_CASE("a Chrome trace being recorded is written when the process dies") {
    // Written at exit before; a gr fatal error or std::terminate (an uncaught deadlock_error)
    // left no file, when it was wanted most.
    const std::string path = "/tmp/gr_trace_on_abort_" + std::to_string(::getpid()) + ".json";
    auto file_text = [&] { return read_file(path); };
    SUBCASE("by a gr fatal error") {
      std::remove(path.c_str());
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        auto gate = std::make_unique<gr::semaphore>(0, "gate");
        gr::spawn([&] { gate->acquire(); }, {.name = "entrant"}).detach();
        gr::scheduler::current().run_once();
        gate.reset();  // destroyed while the entrant waits: fatal
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("gr: the Chrome trace so far is in " + path));
      const std::string text = file_text();
      CHECK(contains(text, "\"traceEvents\""));
      CHECK(contains(text, "entrant"));
    }
    SUBCASE("by std::terminate") {
      std::remove(path.c_str());
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        gr::semaphore gate{0, "gate"};
        gr::spawn([&] { gate.acquire(); }, {.name = "stuck"}).detach();
        [&]() noexcept { gr::scheduler::current().run(); }();  // deadlock_error: terminate
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGABRT));
      CHECK(r.says("gr: the Chrome trace so far is in " + path));
      CHECK(r.says("terminate called"));  // the previous handler still runs
      CHECK(contains(file_text(), "stuck"));
    }
    std::remove(path.c_str());
  }

  TEST_CASE("start_chrome_trace with a path it cannot write throws at once") {
    // The file was opened only when written, at exit: a run recorded for nothing, then an error.
    CHECK_THROWS_WITH_AS(gr::start_chrome_trace("/nonexistent-gr-dir/out.json"),
                         "gr::start_chrome_trace: cannot open /nonexistent-gr-dir/out.json for writing: No such file "
                         "or directory",
                         gr::error);
    // Nothing is recording: a good path starts, and stop writes it.
    const std::string path = "/tmp/gr_trace_start_" + std::to_string(::getpid()) + ".json";
    gr::start_chrome_trace(path);
    CHECK(gr::stop_chrome_trace());
    std::ifstream f(path);
    CHECK(f.good());
    std::remove(path.c_str());
  }

  TEST_CASE("a Chrome trace being recorded is written when Ctrl-C or kill ends the program") {
    // A program that seems to hang is stopped with Ctrl-C, and wrote no trace: the one wanted.
    const std::string path = "/tmp/gr_trace_on_signal_" + std::to_string(::getpid()) + ".json";
    auto file_text = [&] { return read_file(path); };
    std::remove(path.c_str());
    SUBCASE("while the scheduler sleeps until a timer") {
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        auto napper = gr::spawn([] { gr::sleep_for(1h); }, {.name = "napper"});
        // The signal comes from another thread that blocks it, so the kernel hands it to this one,
        // asleep in the scheduler's idle wait (as Ctrl-C reaches a single-threaded program).
        std::thread killer([] {
          sigset_t block;
          sigemptyset(&block);
          sigaddset(&block, SIGINT);
          ::pthread_sigmask(SIG_BLOCK, &block, nullptr);
          std::this_thread::sleep_for(50ms);
          ::kill(::getpid(), SIGINT);
        });
        killer.detach();
        napper.join();
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGINT));  // ended by the signal, as it would have been without gr
      CHECK(r.says("gr: the Chrome trace so far is in " + path + " (signal 2: Interrupt)"));
      const std::string text = file_text();
      CHECK(contains(text, "\"traceEvents\""));
      CHECK(contains(text, "napper"));
      CHECK(contains(text, "blocked: sleep"));
    }
    SUBCASE("at the next event while tasks run") {
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        auto worker = gr::spawn(
            [] {
              ::raise(SIGTERM);
              for (;;) gr::yield();
            },
            {.name = "worker"});
        worker.join();
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGTERM));
      CHECK(r.says("gr: the Chrome trace so far is in " + path));
      CHECK(contains(file_text(), "worker"));
    }
#if !GR_TEST_TSAN  // TSan runs a handler only when the thread next enters its runtime: never, in read()
    SUBCASE("while the program is blocked outside the scheduler") {
      // No scheduler event comes (main waits in read(), its task on a semaphore): the trace is
      // written by gr's own thread all the same, and the signal ends the process.
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        gr::semaphore never{0, "never"};
        gr::spawn([&] { never.acquire(); }, {.name = "idle"}).detach();
        gr::scheduler::current().run_once();
        int fds[2];
        if (::pipe(fds) != 0) ::_exit(4);
        // To the main thread, blocked in read(), as the kernel may choose.
        const pthread_t blocked_thread = ::pthread_self();
        std::thread killer([blocked_thread] {
          std::this_thread::sleep_for(50ms);
          ::pthread_kill(blocked_thread, SIGTERM);
        });
        killer.detach();
        char c;
        (void)!::read(fds[0], &c, 1);  // nobody writes: only the signal ends this
        std::fputs("read returned\n", stderr);
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGTERM));
      CHECK(r.says("gr: the Chrome trace so far is in " + path + " (signal 15: Terminated)"));
      CHECK_FALSE(r.says("read returned"));
      CHECK(contains(file_text(), "blocked: acquire semaphore 'never'"));
    }
#endif
    SUBCASE("a second signal ends the program at once") {
      const auto r = gr_test::run_in_child([&] {
        gr::start_chrome_trace(path);
        ::raise(SIGINT);  // passed to gr's thread, which writes the trace and then ends the process
        ::raise(SIGINT);  // the default action again: the end, if that has not come yet
        std::fputs("still alive\n", stderr);
      });
      INFO(r.err);
      CHECK(r.killed_by(SIGINT));
      CHECK_FALSE(r.says("still alive"));
    }
    SUBCASE("a handler the program installed is left alone, and stopping puts the default back") {
      static volatile std::sig_atomic_t got = 0;
      const auto r = gr_test::run_in_child([&] {
        std::signal(SIGTERM, [](int) { got = 1; });
        gr::start_chrome_trace(path);
        ::raise(SIGTERM);
        gr::spawn([] {}, {.name = "after"}).join();  // an event: nothing is written, nothing ends
        if (!got) std::fputs("the program's handler did not run\n", stderr);
        struct sigaction sa {};
        ::sigaction(SIGINT, nullptr, &sa);
        if (sa.sa_handler == SIG_DFL) std::fputs("SIGINT caught while recording\n", stderr);
        gr::stop_chrome_trace();
        ::sigaction(SIGINT, nullptr, &sa);
        if (sa.sa_handler != SIG_DFL) std::fputs("SIGINT still caught after stop\n", stderr);
      });
      INFO(r.err);
      CHECK(r.exited_with(0));
      CHECK(r.err.empty());
      CHECK(contains(file_text(), "after"));  // written by stop_chrome_trace, as before
    }
    std::remove(path.c_str());
  }

  TEST_CASE("a scheduler destroyed with tasks alive reports them in the dump format") {
    std::string report;
    long long stacks_kept = -1;
    {
      gr_test::capture_stderr err;
      stacks_kept = gr_test::on_thread([] {
        gr::spawn([] { gr::sleep_for(1h); }, {.name = "napper"}).detach();
        gr::yield();  // napper blocks; the thread ends with it asleep
      }).stacks_kept;
      report = err.text();
    }
    INFO(report);
    CHECK(stacks_kept == 0);
    CHECK(contains(report, "gr: the scheduler is being destroyed with 1 unfinished task(s); unwinding them:\n"));
    CHECK(contains(report, "task #1 'napper': blocked, waits to sleep (deadline in "));  // the thread's first task
    CHECK(contains(report, "dump_test.cpp:"));
    CHECK(contains(report, " KiB peak of 256 KiB"));
  }
}
