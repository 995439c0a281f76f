// Tasks: spawn order, join, detach, the handle's rules, unjoined exceptions, the main task.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <array>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using gr_test::contains;

namespace {

// unjoined_log: installs a handler that records every unjoined exception; the default comes back
// when it goes out of scope.
struct unjoined_log {
  struct entry {
    gr::task_info info;
    std::string what;
  };
  std::vector<entry> entries;

  unjoined_log() {
    gr::scheduler::current().set_unjoined_handler([this](const gr::task_info& i, std::exception_ptr e) {
      std::string what = "?";
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        what = x.what();
      } catch (...) {
      }
      entries.push_back({i, what});
    });
  }
  ~unjoined_log() { gr::scheduler::current().set_unjoined_handler({}); }
};

// flag_on_destroy: sets `*flag` when destroyed (tells when a task's callable went away).
struct flag_on_destroy {
  std::shared_ptr<bool> flag;
  explicit flag_on_destroy(std::shared_ptr<bool> f) : flag(std::move(f)) {}
  flag_on_destroy(flag_on_destroy&& o) noexcept = default;
  ~flag_on_destroy() {
    if (flag) *flag = true;
  }
};

// slab_stacks_only: no guard budget for one scope, so new stacks come from slabs and every stack's
// top sits at the same offset in its page, whatever the host's mapping limit; restores it after.
struct slab_stacks_only {
  std::size_t old = gr::set_guard_budget(0);
  slab_stacks_only() { gr::trim_stack_pool(); }  // fresh stacks: successive colours
  ~slab_stacks_only() {
    gr::trim_stack_pool();
    gr::set_guard_budget(old);
  }
};

// top_callable<N>: a callable of exactly N bytes (a multiple of 64) that counts its runs.
template <std::size_t N>
struct alignas(64) top_callable {
  std::array<char, N - 64> pad;
  int* ran;
  void operator()() const { ++*ran; }
};

}  // namespace

TEST_SUITE("sched.task") {
  TEST_CASE("spawn queues the task and the caller goes on") {
    std::string log;
    auto t = gr::spawn([&] { log += "task "; });
    log += "caller ";
    CHECK(!t.done());
    CHECK(gr::scheduler::current().task_count() == 1);
    t.join();
    CHECK(log == "caller task ");
    CHECK(gr::scheduler::current().task_count() == 0);
  }

  TEST_CASE("yielding tasks run in round-robin order") {
    std::string log;
    std::vector<gr::task> tasks;
    for (char c : std::string("abc"))
      tasks.push_back(gr::spawn([&log, c] {
        for (int i = 0; i < 3; ++i) {
          log += c;
          gr::yield();
        }
      }));
    for (auto& t : tasks) t.join();
    CHECK(log == "abcabcabc");
  }

  TEST_CASE("a task spawned by a task queues behind the runnable ones") {
    std::string log;
    gr::task inner;
    auto a = gr::spawn([&] {
      log += 'a';
      inner = gr::spawn([&] { log += 'c'; });
      gr::yield();
      log += 'a';
    });
    auto b = gr::spawn([&] { log += 'b'; });
    a.join();
    b.join();
    inner.join();
    CHECK(log == "abca");
  }

  TEST_CASE("yield with no other runnable task returns at once") {
    int n = 0;
    auto t = gr::spawn([&] {
      for (int i = 0; i < 5; ++i) {
        gr::yield();
        ++n;
      }
    });
    t.join();
    CHECK(n == 5);
    gr::yield();  // the main task alone
  }

  TEST_CASE("join waits for the task to finish") {
    int steps = 0;
    auto t = gr::spawn([&] {
      for (int i = 0; i < 10; ++i) {
        ++steps;
        gr::yield();
      }
    });
    t.join();
    CHECK(steps == 10);
    CHECK(!t.joinable());
  }

  TEST_CASE("join rethrows the exception that ended the task") {
    SUBCASE("a std::exception keeps its type and message") {
      auto t = gr::spawn([] { throw std::out_of_range("index 7"); });
      CHECK_THROWS_WITH_AS(t.join(), "index 7", std::out_of_range);
    }
    SUBCASE("any thrown type travels") {
      auto t = gr::spawn([] { throw 42; });
      try {
        t.join();
        FAIL("join did not throw");
      } catch (int v) {
        CHECK(v == 42);
      }
    }
    SUBCASE("a task that already finished rethrows on join") {
      auto t = gr::spawn([] { throw std::runtime_error("early"); });
      gr::yield();
      CHECK(t.done());
      CHECK_THROWS_WITH_AS(t.join(), "early", std::runtime_error);
    }
    SUBCASE("after blocking") {
      auto t = gr::spawn([] {
        gr::yield();
        gr::sleep_for(1ms);
        throw std::runtime_error("late");
      });
      CHECK_THROWS_WITH_AS(t.join(), "late", std::runtime_error);
    }
  }

  TEST_CASE("join of a finished task returns at once") {
    auto t = gr::spawn([] {});
    gr::yield();
    CHECK(t.done());
    const std::uint64_t id = t.id();
    auto other = gr::spawn([] {});
    t.join();  // must not run `other`: nothing to wait for
    CHECK(!other.done());
    CHECK(id != 0);
    other.join();
  }

  TEST_CASE("join on an empty handle throws gr::error") {
    gr::task empty;
    CHECK_THROWS_AS(empty.join(), gr::error);
    auto t = gr::spawn([] {});
    t.join();
    CHECK_THROWS_AS(t.join(), gr::error);
    auto d = gr::spawn([] {});
    d.detach();
    CHECK_THROWS_AS(d.join(), gr::error);
    gr::scheduler::current().run();
  }

  TEST_CASE("a task that joins itself gets gr::error") {
    gr::task self;
    bool threw = false;
    self = gr::spawn([&] {
      try {
        self.join();
      } catch (const gr::error& e) {
        threw = contains(e.what(), "cannot join itself");
      }
    });
    self.join();
    CHECK(threw);
  }

  TEST_CASE("a second task joining the same handle gets gr::error") {
    auto target = gr::spawn([] { gr::yield(); });
    bool second_threw = false;
    auto first = gr::spawn([&] { target.join(); });
    auto second = gr::spawn([&] {
      try {
        target.join();
      } catch (const gr::error& e) {
        second_threw = contains(e.what(), "by another task");
      }
    });
    first.join();
    second.join();
    CHECK(second_threw);
    CHECK(!target.joinable());
  }

  TEST_CASE("joining a task of another thread's scheduler throws gr::error") {
    // From a thread that has a scheduler of its own and from one that has none yet: both name the
    // task, and neither touches it (it still runs and joins here).
    auto t = gr::spawn([] { gr::yield(); });
    for (bool own_scheduler : {true, false}) {
      std::string what;
      std::thread other([&] {
        if (own_scheduler) gr::scheduler::current();
        try {
          t.join();
        } catch (const gr::error& e) {
          what = e.what();
        }
      });
      other.join();
      CAPTURE(own_scheduler);
      CHECK(contains(what, "belongs to another thread's scheduler"));
      CHECK(contains(what, "task #" + std::to_string(t.id())));
    }
    CHECK(t.joinable());
    t.join();
    CHECK(!t.joinable());
  }

  TEST_CASE("join_until with no deadline is join: it rethrows and empties the handle") {
    auto ok = gr::spawn([] { gr::yield(); });
    CHECK(ok.join_until(gr::time_point::max()));
    CHECK(!ok.joinable());
    auto bad = gr::spawn([] {
      gr::yield();
      throw std::runtime_error("late failure");
    });
    CHECK_THROWS_WITH_AS(bad.join_until(gr::time_point::max()), "late failure", std::runtime_error);
    CHECK(!bad.joinable());
  }

  TEST_CASE("join_for times out and leaves the handle joinable") {
    gr_test::use_clock<gr::virtual_clock> vc;
    auto t = gr::spawn([] { gr::sleep_for(10s); });
    CHECK(!t.join_for(1s));
    CHECK(vc.elapsed() == 1s);
    CHECK(t.joinable());
    CHECK(!t.join_until(gr_test::at(5s)));
    CHECK(vc.elapsed() == 5s);
    CHECK(t.join_for(1h));
    CHECK(vc.elapsed() == 10s);
    CHECK(!t.joinable());
  }

  TEST_CASE("a detached task runs to completion") {
    bool ran = false;
    auto t = gr::spawn([&] {
      gr::yield();
      ran = true;
    });
    t.detach();
    CHECK(!t.joinable());
    CHECK(!t.done());
    gr::scheduler::current().run();
    CHECK(ran);
  }

  TEST_CASE("destroying a joinable handle detaches the task") {
    int steps = 0;
    {
      auto t = gr::spawn([&] {
        for (int i = 0; i < 3; ++i) {
          gr::yield();
          ++steps;
        }
      });
    }
    CHECK(gr::scheduler::current().task_count() == 1);
    gr::scheduler::current().run();
    CHECK(steps == 3);
  }

  TEST_CASE("move-assigning over a joinable handle detaches the old task") {
    bool first = false, second = false;
    auto t = gr::spawn([&] { first = true; });
    auto first_id = t.id();
    t = gr::spawn([&] { second = true; });
    CHECK(t.id() != first_id);
    auto moved = std::move(t);
    CHECK(!t.joinable());  // NOLINT(bugprone-use-after-move): a moved-from handle is empty
    CHECK(moved.joinable());
    moved.join();
    CHECK(second);
    gr::scheduler::current().run();
    CHECK(first);
  }

  TEST_CASE("the callable is destroyed when the task finishes") {
    auto gone = std::make_shared<bool>(false);
    auto t = gr::spawn([guard = flag_on_destroy(gone)] { gr::yield(); });
    CHECK(!*gone);
    gr::yield();
    CHECK(!*gone);  // suspended in its yield
    gr::yield();
    CHECK(*gone);  // finished; the handle still holds the record
    CHECK(t.done());
    t.join();
  }

  TEST_CASE("a move-only callable runs and its result is discarded") {
    auto p = std::make_unique<int>(7);
    int seen = 0;
    auto t = gr::spawn([p = std::move(p), &seen] {
      seen = *p;
      return std::string("ignored");
    });
    t.join();
    CHECK(seen == 7);
  }

  TEST_CASE("a callable too big for the stack is refused") {
    std::array<char, 6000> big{};
    big[0] = 1;
    CHECK_THROWS_WITH_AS(gr::spawn([big] { (void)big; }, {.name = "big", .stack_size = 8 * 1024}),
                         doctest::Contains("gr::spawn: the callable of task 'big' ("), gr::error);
    CHECK(gr::scheduler::current().task_count() == 0);
  }

  TEST_CASE("task frames sit at their stack's cache colour below the top") {
    slab_stacks_only slabs;
    std::vector<gr::task> ts;
    for (unsigned i = 0; i < gr::stack::colours; ++i) ts.push_back(gr::spawn([] { gr::yield(); }));
    std::set<std::uintptr_t> depths;  // from the stack's top down to the frame
    for (const auto& i : gr::scheduler::current().snapshot()) {
      if (i.is_main) continue;
      const auto top = reinterpret_cast<std::uintptr_t>(i.stack_base) + i.stack_size;
      depths.insert(top - reinterpret_cast<std::uintptr_t>(i.greenlet));
    }
    // One depth per colour, a colour step apart.
    REQUIRE(depths.size() == gr::stack::colours);
    CHECK(*depths.rbegin() - *depths.begin() == (gr::stack::colours - 1) * gr::stack::colour_step);
    for (auto& t : ts) t.join();
  }

  TEST_CASE("a frame that fits only at the very top of a small stack gets no colour there") {
    // A frame that leaves exactly 128 bytes more than the task's own minimum below it on an 8 KiB
    // stack: colours 0 to 2 fit, the rest must fall back to the top instead of refusing the spawn.
    constexpr std::size_t size = 8 * 1024;
    constexpr std::size_t overhead = sizeof(gr::detail::task_frame<top_callable<64>>) - 64;
    constexpr std::size_t fill = size - gr::min_stack_size / 2 - 128 - overhead;
    using callable = top_callable<fill>;
    static_assert(sizeof(gr::detail::task_frame<callable>) == size - gr::min_stack_size / 2 - 128);
    slab_stacks_only slabs;
    int ran = 0;
    std::vector<gr::task> ts;
    for (unsigned i = 0; i < gr::stack::colours; ++i) ts.push_back(gr::spawn(callable{{}, &ran}, {.stack_size = size}));
    std::set<std::uintptr_t> depths;  // from the stack's top down to the frame
    for (const auto& i : gr::scheduler::current().snapshot())
      if (!i.is_main) depths.insert(reinterpret_cast<std::uintptr_t>(i.stack_base) + i.stack_size -
                                    reinterpret_cast<std::uintptr_t>(i.greenlet));
    // The uncoloured depth and at most two coloured ones; everything deeper fell back.
    CHECK(depths.size() >= 2);
    CHECK(depths.size() <= 3);
    CHECK(*depths.rbegin() - *depths.begin() <= 2 * gr::stack::colour_step);
    for (auto& t : ts) t.join();
    CHECK(ran == static_cast<int>(gr::stack::colours));
  }

  TEST_CASE("stack_size is honoured") {
    auto t = gr::spawn([] {}, {.name = "big stack", .stack_size = 1024 * 1024});
    bool found = false;
    for (const auto& i : gr::scheduler::current().snapshot())
      if (i.id == t.id()) {
        found = true;
        CHECK(i.stack_size >= 1024 * 1024);
      }
    CHECK(found);
    t.join();
  }

  TEST_CASE("a task knows its id and name") {
    CHECK(gr::this_task::id() == 0);
    CHECK(gr::this_task::name() == "main");
    std::uint64_t id = 0;
    std::string name;
    auto t = gr::spawn(
        [&] {
          id = gr::this_task::id();
          name = gr::this_task::name();
        },
        {.name = "worker"});
    CHECK(t.name() == "worker");
    const auto tid = t.id();
    t.join();
    CHECK(id == tid);
    CHECK(name == "worker");
  }

  TEST_CASE("the main task can block while other tasks run") {
    gr_test::use_clock<gr::virtual_clock> vc;
    std::string log;
    SUBCASE("in join") {
      auto t = gr::spawn([&] {
        gr::sleep_for(2s);
        log += "task";
      });
      t.join();
      CHECK(log == "task");
    }
    SUBCASE("in sleep") {
      auto t = gr::spawn([&] {
        gr::sleep_for(1s);
        log += "task ";
      });
      gr::sleep_for(3s);
      log += "main";
      CHECK(vc.elapsed() == 3s);
      CHECK(t.done());
      t.join();
      CHECK(log == "task main");
    }
    SUBCASE("in lock") {
      gr::mutex m{"m"};
      auto t = gr::spawn([&] {
        std::lock_guard g(m);
        gr::sleep_for(1s);
        log += "task ";
      });
      gr::yield();  // the task takes the lock and sleeps
      {
        std::lock_guard g(m);
        log += "main";
      }
      t.join();
      CHECK(log == "task main");
    }
  }

  TEST_CASE("an unjoined exception is handed to the unjoined handler") {
    unjoined_log log;
    SUBCASE("of a detached task") {
      gr::spawn([] { throw std::runtime_error("lost"); }, {.name = "thrower"}).detach();
      const int line = __LINE__ - 1;
      gr::scheduler::current().run();
      REQUIRE(log.entries.size() == 1);
      CHECK(log.entries[0].what == "lost");
      CHECK(log.entries[0].info.name == "thrower");
      CHECK(contains(log.entries[0].info.spawned_at, "task_test.cpp:" + std::to_string(line)));
    }
    SUBCASE("of a task whose handle was dropped before it ended") {
      { auto t = gr::spawn([] { throw std::runtime_error("dropped"); }); }
      gr::scheduler::current().run();
      REQUIRE(log.entries.size() == 1);
      CHECK(log.entries[0].what == "dropped");
    }
    SUBCASE("of a task whose handle was dropped after it ended") {
      auto t = gr::spawn([] { throw std::runtime_error("late drop"); });
      gr::yield();
      CHECK(t.done());
      CHECK(log.entries.empty());
      t.detach();
      REQUIRE(log.entries.size() == 1);
      CHECK(log.entries[0].what == "late drop");
    }
    SUBCASE("but not when it is joined") {
      auto t = gr::spawn([] { throw std::runtime_error("joined"); });
      CHECK_THROWS(t.join());
      CHECK(log.entries.empty());
    }
    SUBCASE("but not when a task ends normally or by cancellation") {
      gr::spawn([] {}).detach();
      auto t = gr::spawn([] { gr::sleep_for(1h); });
      gr::yield();
      t.cancel();
      t.detach();
      gr::scheduler::current().run();
      CHECK(log.entries.empty());
    }
  }

  TEST_CASE("an unjoined exception is reported on stderr by default") {
    gr_test::capture_stderr err;
    gr::spawn([] { throw std::runtime_error("nobody caught me"); }, {.name = "orphan"}).detach();
    const int line = __LINE__ - 1;
    gr::spawn([] { throw 5; }).detach();
    gr::scheduler::current().run();
    const std::string text = err.text();
    err.restore();
    INFO(text);
    CHECK(contains(text, "gr: task 'orphan' (#"));
    CHECK(contains(text, "task_test.cpp:" + std::to_string(line) +
                             ") ended with an exception nobody joined: std::runtime_error: nobody caught me\n"));
    CHECK(contains(text, "ended with an exception nobody joined: an exception of type int (not derived from "
                         "std::exception)\n"));
  }

  TEST_CASE("a throwing unjoined handler does not break the scheduler") {
    gr_test::capture_stderr err;
    gr::scheduler::current().set_unjoined_handler([](const gr::task_info&, std::exception_ptr) {
      throw std::logic_error("handler broke");
    });
    gr::spawn([] { throw std::runtime_error("first"); }).detach();
    bool after = false;
    auto t = gr::spawn([&] { after = true; });
    t.join();
    gr::scheduler::current().run();
    gr::scheduler::current().set_unjoined_handler({});
    const std::string text = err.text();
    err.restore();
    CHECK(after);
    CHECK(contains(text, "handler broke"));
    CHECK(contains(text, "nobody joined: std::runtime_error: first"));
  }
}

TEST_SUITE("sched.misuse") {
  TEST_CASE("a blocking call from a plain greenlet that is not a task throws gr::error") {
    gr::scheduler::current();  // made from the root greenlet, as it must be
    std::string what;
    gr::greenlet g([&](void*) -> void* {
      try {
        gr::yield();
      } catch (const gr::error& e) {
        what = e.what();
      }
      try {
        gr::sleep_for(std::chrono::milliseconds(1));
      } catch (const gr::error& e) {
        what += e.what();
      }
      return nullptr;
    });
    g.set_name("raw");
    g.switch_to();
    CHECK(what.find("greenlet 'raw', which is not a task") != std::string::npos);
    CHECK(what.find("sleep") == std::string::npos);  // both calls refused before doing anything
    CHECK(gr::scheduler::current().task_count() == 0);
    // The refused sleep left no timer armed on the main task (set_clock refuses to change the
    // clock while a task waits with a deadline).
    bool deadline_left = false;
    for (const auto& i : gr::scheduler::current().snapshot()) deadline_left = deadline_left || i.has_deadline;
    CHECK_FALSE(deadline_left);
    CHECK_NOTHROW(gr_test::use_clock<gr::manual_clock>{});
  }
}
