// A task that overruns its stack: the message names the task (id, name, spawn site), not the
// address of the greenlet it runs on. Each test forks a child that overflows, and checks how the
// child dies and what it printed on stderr.
#include <doctest/doctest.h>

#include "child_process.hpp"
#include "overflow_util.hpp"
#include "slab_layout.hpp"
#include "test_util.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/runtime/stack.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <source_location>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

// announce: the message the child's task should get, written by the task itself on stderr
// after "expect: " (its id is known only there), so the parent can look for it. The size is the
// stack_size it was spawned with (the message once gave the part below the task's frame: "255
// KiB" for 256).
void announce(const char* name, const std::source_location& where, std::size_t stack_size, const char* how) {
  const std::string label = *name ? std::string(" '") + name + "'" : std::string();
  std::fprintf(stderr, "expect: gr: stack overflow in task #%llu%s (stack %zu KiB, spawned at %s:%u)%s\n",
               static_cast<unsigned long long>(gr::this_task::id()), label.c_str(), stack_size / 1024,
               where.file_name(), static_cast<unsigned>(where.line()), how);
}

std::string expected(const gr_test::child_result& r) {
  const auto at = r.err.find("expect: ");
  if (at == std::string::npos) return "(the child announced nothing)";
  const auto end = r.err.find('\n', at);
  return r.err.substr(at + 8, end - at - 8);
}

gr_test::child_result overflow_task_in_child(const char* name) {
  return gr_test::run_in_child([name] {
    const auto where = std::source_location::current();
    gr::task t = gr::spawn(
        [name, where] {
          if (gr::greenlet::current()->stack_region().origin != gr::stack::kind::guarded) ::_exit(4);
          announce(name, where, 64 * 1024, ": hit the guard page");
          gr_test::recurse_until_overflow(0);
        },
        {.name = name, .stack_size = 64 * 1024}, where);
    t.join();
    ::_exit(5);  // the recursion came back: nothing overflowed
  });
}

}  // namespace

TEST_SUITE("sched.overflow") {
  TEST_CASE("a guard page hit in a task names the task and where it was spawned") {
    for (const char* name : {"recursor", ""}) {
      CAPTURE(name);
      const gr_test::child_result r = overflow_task_in_child(name);
      INFO("child stderr: " << r.err);
      REQUIRE_FALSE(r.exited_with(4));  // the stack must be a guarded one
      REQUIRE_FALSE(r.exited_with(5));
      const std::string want = expected(r);
      CHECK(want.find(__FILE__) != std::string::npos);
#if GR_TEST_ASAN
      CHECK(r.died());
      CHECK((r.err.find(want, r.err.find('\n')) != std::string::npos || r.says("AddressSanitizer")));
#else
      CHECK(r.killed_by(SIGSEGV));
      CHECK(r.err.find(want, r.err.find('\n')) != std::string::npos);  // past the announcement
#endif
      CHECK_FALSE(r.says("in greenlet"));
    }
  }

  TEST_CASE("a task past the guard budget that overflows hits its slab slot's guard page") {
    // A Go port: thousands of tasks blocked, then one recurses deeply. Its slab slot had only a
    // canary, and the recursion overwrote the tasks below (their wait nodes: a false deadlock
    // report with garbage deadlines). Where the kernel has guard regions, it faults at once.
    const gr_test::child_result r = gr_test::run_in_child([] {
      gr::set_guard_budget(0);  // in the child only: every new stack comes from a slab
      gr::trim_stack_pool();
      gr::semaphore never(0, "never");
      std::vector<gr::task> neighbours;
      for (int i = 0; i < 8; ++i) neighbours.push_back(gr::spawn([&] { never.acquire(); }, {.name = "neighbour"}));
      gr::yield();
      const auto where = std::source_location::current();
      gr::task t = gr::spawn(
          [where] {
            gr_test::require_guarded_slot(gr::greenlet::current()->stack_region());
            announce("recursor", where, 64 * 1024, ": hit the guard page");
            gr_test::recurse_until_overflow(0);
          },
          {.name = "recursor", .stack_size = 64 * 1024}, where);
      t.join();
      ::_exit(5);
    });
    INFO("child stderr: " << r.err);
    if (!gr_test::overflowed_a_guarded_slot(r)) return;
    const std::string want = expected(r);
#if GR_TEST_ASAN
    CHECK(r.died());
    CHECK((r.err.find(want, r.err.find('\n')) != std::string::npos || r.says("AddressSanitizer")));
#else
    CHECK(r.killed_by(SIGSEGV));
    CHECK(r.err.find(want, r.err.find('\n')) != std::string::npos);
#endif
  }

  TEST_CASE("a frame bigger than the guard page that steps over it still names the task") {
    // A frame written at its low end first that reaches past the guard page (alloca, a large
    // buffer): the fault is below the guard page, and only a bare "Segmentation fault" was
    // printed. The handler now also knows the stack pointer has left the stack.
    const gr_test::child_result r = gr_test::run_in_child([] {
      const auto where = std::source_location::current();
      gr::task t = gr::spawn(
          [where] {
            if (gr::greenlet::current()->stack_region().origin != gr::stack::kind::guarded) ::_exit(4);
            announce("parser", where, 64 * 1024, "");
            const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
            gr_test::step_over_guard_page(gr::greenlet::current()->stack_region().base, 3 * page);
          },
          {.name = "parser", .stack_size = 64 * 1024}, where);
      t.join();
      ::_exit(5);
    });
    INFO("child stderr: " << r.err);
    REQUIRE_FALSE(r.exited_with(4));
    REQUIRE_FALSE(r.exited_with(5));
    // Where the compiler probes big frames page by page (-fstack-clash-protection, the default of
    // some distributions' GCC), the probe hits the guard page first; Debian's GCC does not probe.
    const std::string stepped = expected(r) + ": its stack pointer is past the stack's end (a frame bigger than the "
                                              "guard page stepped over it)";
    const std::string probed = expected(r) + ": hit the guard page";
#if GR_TEST_ASAN || GR_TEST_TSAN
    // The sanitizer's SIGSEGV handler came first: a fault past the guard page is its to report.
    CHECK(r.died());
    CHECK((r.says(stepped) || r.says(probed) || r.says("AddressSanitizer") || r.says("ThreadSanitizer")));
#else
    CHECK(r.killed_by(SIGSEGV));
    CHECK((r.says(stepped) || r.says(probed)));
#endif
  }

  TEST_CASE("a broken canary in a task aborts naming the task") {
    const gr_test::child_result r = gr_test::run_in_child([] {
      gr::set_guard_budget(0);  // in the child only: every new stack comes from a canary slab
      gr::detail::set_slab_guard_pages(false);
      gr::trim_stack_pool();
      const auto where = std::source_location::current();
      gr::task t = gr::spawn(
          [where] {
            const gr::stack& s = gr::greenlet::current()->stack_region();
            if (!s.has_canary()) ::_exit(4);
            announce("victim", where, 48 * 1024, ": its canary at the low end of the stack was overwritten");
            gr::spawn([] {}).detach();                   // so that the yield switches away
            *static_cast<std::uint64_t*>(s.base) = 0;  // what a frame running off the end would do
            gr::yield();                                 // the switch away checks the canary
          },
          {.name = "victim", .stack_size = 48 * 1024}, where);
      t.join();
      ::_exit(5);  // the switch away did not notice
    });
    INFO("child stderr: " << r.err);
    REQUIRE_FALSE(r.exited_with(4));
    REQUIRE_FALSE(r.exited_with(5));
    CHECK(r.killed_by(SIGABRT));
    const std::string want = expected(r);
    CHECK(want.find("task #") != std::string::npos);
    CHECK(r.err.find(want, r.err.find('\n')) != std::string::npos);
  }
}
