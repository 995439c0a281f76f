// Stack overflow diagnosis, observed from outside: each test forks a child that overflows or
// corrupts a stack, and checks how the child dies and what it printed on stderr.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "child_process.hpp"
#include "overflow_util.hpp"
#include "slab_layout.hpp"
#include "test_util.hpp"

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

// overflow_in_child: a greenlet named "deep-diver" with a guarded 64 KiB stack recurses until it
// hits the guard page.
gr_test::child_result overflow_in_child() {
  return gr_test::run_in_child([] {
    gr::greenlet g([](void*) -> void* { return gr_test::num(static_cast<std::intptr_t>(gr_test::recurse_until_overflow(0))); },
                   nullptr, 64 * 1024);
    g.set_name("deep-diver");
    if (g.stack_region().origin != gr::stack::kind::guarded) ::_exit(4);
    g.switch_to();
    ::_exit(5);  // the recursion came back: nothing overflowed
  });
}

// corrupt_canary_in_child: a greenlet named "canary-victim" on stack `s` overwrites its own
// canary word, then switches away.
template <class MakeStack>
gr_test::child_result corrupt_canary_in_child(MakeStack make_stack) {
  return gr_test::run_in_child([&] {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet g([main](void*) -> void* {
      const gr::stack& s = gr::greenlet::current()->stack_region();
      *static_cast<std::uint64_t*>(s.base) = 0;  // what a frame running off the end would do
      main->switch_to();
      return nullptr;
    }, nullptr, make_stack());
    g.set_name("canary-victim");
    if (!g.stack_region().has_canary()) ::_exit(4);
    g.switch_to();
    ::_exit(5);  // the switch away did not notice
  });
}

}  // namespace

TEST_SUITE("greenlet.overflow") {
  TEST_CASE("a guard page hit names the greenlet and its stack size and dies by SIGSEGV") {
    const gr_test::child_result r = overflow_in_child();
    INFO("child stderr: " << r.err);
    REQUIRE_FALSE(r.exited_with(4));  // the stack must be a guarded one
    REQUIRE_FALSE(r.exited_with(5));
#if GR_TEST_ASAN
    // ASan owns SIGSEGV: either gr's handler or ASan's reports the overflow, then the child dies.
    CHECK(r.died());
    CHECK((r.says("gr: stack overflow in greenlet deep-diver (stack 64 KiB)") || r.says("AddressSanitizer")));
#else
    // Under valgrind too: it delivers the fault to gr's handler (and notes the child's death on
    // its own log, not on the child's stderr).
    CHECK(r.killed_by(SIGSEGV));
    CHECK(r.says("gr: stack overflow in greenlet deep-diver (stack 64 KiB)"));
#endif
  }

  TEST_CASE("an overflow on a slab stack hits its guard page where the kernel has guard regions") {
    // Past the guard budget (about 28,000 live stacks) stacks are slab slots. With only a canary
    // word, ordinary recursion (frames that leave it unwritten) ran on into the slot below and
    // corrupted another greenlet unseen. A guard region below each slot costs no mapping.
    const gr_test::child_result r = gr_test::run_in_child([] {
      gr::set_guard_budget(0);  // in the child only: every new stack comes from a slab
      gr::trim_stack_pool();
      gr::greenlet g([](void*) -> void* { return gr_test::num(static_cast<std::intptr_t>(gr_test::recurse_until_overflow(0))); },
                     nullptr, 64 * 1024);
      g.set_name("slab-diver");
      gr_test::require_guarded_slot(g.stack_region());
      g.switch_to();
      ::_exit(5);
    });
    INFO("child stderr: " << r.err);
    if (!gr_test::overflowed_a_guarded_slot(r)) return;
#if GR_TEST_ASAN
    CHECK(r.died());
    CHECK((r.says("gr: stack overflow in greenlet slab-diver (stack 64 KiB): hit the guard page") ||
           r.says("AddressSanitizer")));
#else
    CHECK(r.killed_by(SIGSEGV));
    CHECK(r.says("gr: stack overflow in greenlet slab-diver (stack 64 KiB): hit the guard page"));
#endif
  }

  TEST_CASE("a broken canary on a user stack aborts naming the greenlet") {
    auto memory = std::make_unique<unsigned char[]>(32 * 1024);
    const gr_test::child_result r = corrupt_canary_in_child([&] { return gr::user_stack(memory.get(), 32 * 1024); });
    INFO("child stderr: " << r.err);
    REQUIRE_FALSE(r.exited_with(4));
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("gr: stack overflow in greenlet canary-victim"));
    CHECK(r.says("canary"));
  }

  TEST_CASE("a broken canary on an unguarded stack aborts naming the greenlet") {
    const gr_test::child_result r = corrupt_canary_in_child([] {
      gr::set_guard_budget(0);  // in the child only: every new stack comes from a canary slab
      gr::detail::set_slab_guard_pages(false);
      gr::trim_stack_pool();
      return gr::allocate_stack(48 * 1024);
    });
    INFO("child stderr: " << r.err);
    REQUIRE_FALSE(r.exited_with(4));
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("gr: stack overflow in greenlet canary-victim (stack 48 KiB)"));
  }
}
