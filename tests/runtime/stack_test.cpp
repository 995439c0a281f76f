#include <doctest/doctest.h>

#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>

#include "child_process.hpp"
#include "slab_layout.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>

#include <sys/resource.h>
#include <unistd.h>

namespace {

std::size_t page() { return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)); }

std::uint64_t low_word(const gr::stack& s) {
  std::uint64_t w;
  std::memcpy(&w, s.base, sizeof w);
  return w;
}

// budget_override: sets the process's guard budget for one scope and restores it after.
struct budget_override {
  std::size_t old;
  explicit budget_override(std::size_t b) : old(gr::set_guard_budget(b)) {}
  ~budget_override() { gr::set_guard_budget(old); }
};

}  // namespace

TEST_SUITE("runtime.stack") {
  TEST_CASE("a size of 0 gives the default stack size") {
    gr::stack s = gr::allocate_stack(0);
    CHECK(s.size == gr::default_stack_size);
    CHECK(static_cast<bool>(s));
    gr::release_stack(s);
  }

  TEST_CASE("sizes are rounded up to whole pages") {
    gr::stack s = gr::allocate_stack(64 * 1024 + 1);
    CHECK(s.size == 64 * 1024 + page());
    CHECK(s.size % page() == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(s.base) % page() == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(s.top()) % 16 == 0);
    gr::release_stack(s);
  }

  TEST_CASE("sizes below the minimum are rounded up to the minimum") {
    gr::stack s = gr::allocate_stack(1);
    CHECK(s.size == gr::min_stack_size);
    gr::release_stack(s);
  }

  TEST_CASE("the whole stack is writable") {
    gr::stack s = gr::allocate_stack(32 * 1024);
    std::memset(s.base, 0xab, s.size);
    CHECK(static_cast<unsigned char*>(s.base)[0] == 0xab);
    CHECK(static_cast<unsigned char*>(s.top())[-1] == 0xab);
    gr::release_stack(s);
  }

  TEST_CASE("a stack within the guard budget is guarded and carries no canary") {
    gr::trim_stack_pool();
    const auto before = gr::stack_statistics();
    REQUIRE(before.guarded_live < before.guard_budget);
    gr::stack s = gr::allocate_stack(40 * 1024);
    CHECK(s.origin == gr::stack::kind::guarded);
    CHECK_FALSE(s.has_canary());
    CHECK(gr::detail::canary_intact(s));
    CHECK(gr::stack_statistics().guarded_live == before.guarded_live + 1);
    gr::release_stack(s);
    gr::trim_stack_pool();
    CHECK(gr::stack_statistics().guarded_live == before.guarded_live);
  }

  TEST_CASE("with no guard budget left stacks come from slabs and carry a canary") {
    gr_test::slab_layout canaries(false);
    gr::trim_stack_pool();
    const auto before = gr::stack_statistics();
    {
      budget_override no_guards(0);
      CHECK(gr::stack_statistics().guard_budget == 0);
      gr::stack a = gr::allocate_stack(24 * 1024);
      gr::stack b = gr::allocate_stack(24 * 1024);
      CHECK(a.origin == gr::stack::kind::unguarded);
      CHECK(b.origin == gr::stack::kind::unguarded);
      CHECK(a.size == 24 * 1024);
      CHECK(a.has_canary());
      CHECK(low_word(a) == gr::detail::canary_word);
      CHECK(gr::detail::canary_intact(a));
      CHECK(a.base != b.base);
      CHECK(gr::stack_statistics().guarded_live == before.guarded_live);
      CHECK(gr::stack_statistics().unguarded_slots > 0);
      std::memset(static_cast<char*>(b.base) + 8, 0xcd, b.size - 8);  // usable above the canary
      CHECK(gr::detail::canary_intact(b));
      gr::release_stack(a);
      gr::release_stack(b);
    }
    gr::trim_stack_pool();  // slab slots go back to their slab, not to a later guarded request
    CHECK(gr::stack_statistics().guard_budget == before.guard_budget);
  }

  TEST_CASE("guarded stacks are spent up to the budget and slabs serve the rest") {
    gr::trim_stack_pool();
    const auto before = gr::stack_statistics();
    {
      budget_override one_more(before.guarded_live + 1);
      gr::stack a = gr::allocate_stack(20 * 1024);
      gr::stack b = gr::allocate_stack(20 * 1024);
      CHECK(a.origin == gr::stack::kind::guarded);
      CHECK(gr_test::from_slab(b));
      gr::release_stack(a);
      gr::release_stack(b);
    }
    gr::trim_stack_pool();
    CHECK(gr::stack_statistics().guarded_live == before.guarded_live);
  }

  TEST_CASE("set_guard_budget returns the previous budget") {
    const std::size_t original = gr::set_guard_budget(123);
    CHECK(gr::set_guard_budget(original) == 123);
    CHECK(gr::stack_statistics().guard_budget == original);
  }

  TEST_CASE("a broken canary is detected") {
    gr_test::slab_layout canaries(false);
    gr::trim_stack_pool();
    budget_override no_guards(0);
    gr::stack s = gr::allocate_stack(24 * 1024);
    REQUIRE(s.has_canary());
    static_cast<unsigned char*>(s.base)[3] ^= 0xff;
    CHECK_FALSE(gr::detail::canary_intact(s));
    gr::detail::write_canary(s);
    CHECK(gr::detail::canary_intact(s));
    gr::release_stack(s);
    gr::trim_stack_pool();
  }

  TEST_CASE("a failed mapping throws std::system_error naming the size") {
    const std::size_t huge = std::size_t{1} << 50;  // 1 PiB: more than any process may map
    try {
      gr::stack s = gr::allocate_stack(huge);
      gr::release_stack(s);
      FAIL("a 1 PiB stack was mapped");
    } catch (const std::system_error& e) {
      // ENOMEM from the kernel (EINVAL under valgrind, whose address-space manager refuses it).
      CHECK(std::string(e.what()).find(std::to_string(huge / 1024) + " KiB") != std::string::npos);
    }
    CHECK(gr::stack_statistics().live == 0);
  }

  TEST_CASE("a size too large for the arithmetic throws instead of wrapping around") {
    for (std::size_t size : {~std::size_t{0}, (std::size_t{1} << 61) + 4096}) {
      CAPTURE(size);
      CHECK_THROWS_AS(gr::allocate_stack(size), std::system_error);
    }
    CHECK(gr::stack_statistics().live == 0);
  }

  TEST_CASE("a mapping refused under an address-space limit throws std::system_error naming the size") {
    // In a child: RLIMIT_AS a little above what the process maps now, then a 256 MiB stack.
    const gr_test::child_result r = gr_test::run_in_child([] {
      rlimit lim{};
      std::size_t vm_kib = 0;
      {
        FILE* f = std::fopen("/proc/self/status", "r");
        char line[256];
        while (f && std::fgets(line, sizeof line, f))
          if (std::sscanf(line, "VmSize: %zu kB", &vm_kib) == 1) break;
        if (f) std::fclose(f);
      }
      if (vm_kib == 0) ::_exit(7);
      lim.rlim_cur = lim.rlim_max = (vm_kib + 64 * 1024) * 1024;  // 64 MiB of headroom
      if (::setrlimit(RLIMIT_AS, &lim) != 0) ::_exit(7);
      try {
        gr::stack s = gr::allocate_stack(256u << 20);
        gr::release_stack(s);
        ::_exit(6);
      } catch (const std::system_error& e) {
        std::fputs(e.what(), stderr);
        ::_exit(e.code() == std::errc::not_enough_memory ? 0 : 8);
      }
    });
    INFO("child stderr: " << r.err);
    if (r.exited_with(7)) {
      MESSAGE("could not read VmSize or set RLIMIT_AS here: only the 1 PiB case was checked");
      return;
    }
    CHECK(r.exited_with(0));
    CHECK(r.says("262144 KiB stack"));
  }

  TEST_CASE("user_stack wraps caller memory aligned to 16 bytes with a canary") {
    constexpr std::size_t size = 16 * 1024 + 24;
    auto memory = std::make_unique<unsigned char[]>(size + 16);
    unsigned char* start = memory.get() + 3;  // deliberately misaligned
    const auto before = gr::stack_statistics();
    gr::stack s = gr::user_stack(start, size);
    CHECK(s.origin == gr::stack::kind::user);
    CHECK(reinterpret_cast<std::uintptr_t>(s.base) % 16 == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(s.top()) % 16 == 0);
    CHECK(s.base >= static_cast<void*>(start));
    CHECK(s.top() <= static_cast<void*>(start + size));
    CHECK(s.size > size - 32);
    CHECK(s.has_canary());
    CHECK(low_word(s) == gr::detail::canary_word);
    CHECK(gr::stack_statistics().live == before.live + 1);
    gr::release_stack(s);
    CHECK(gr::stack_statistics().live == before.live);
    CHECK(gr::stack_statistics().pooled == before.pooled);  // never pooled
    CHECK(gr::stack_statistics().guarded_live == before.guarded_live);
  }

  TEST_CASE("a user stack has cache colour 0: gr leaves the placement of its top to the caller") {
    alignas(16) static char memory[16 * 1024];
    gr::stack s = gr::user_stack(memory, sizeof memory);
    CHECK(s.colour == 0);
    gr::release_stack(s);
  }

  TEST_CASE("user_stack rejects null memory with gr::error") {
    CHECK_THROWS_AS(gr::user_stack(nullptr, 64 * 1024), gr::error);
    CHECK_THROWS_WITH(gr::user_stack(nullptr, 64 * 1024), doctest::Contains("null"));
  }

  TEST_CASE("user_stack rejects memory below the minimum size with gr::error naming the size") {
    unsigned char small[100];
    CHECK_THROWS_AS(gr::user_stack(small, sizeof small), gr::error);
    CHECK_THROWS_WITH(gr::user_stack(small, sizeof small), doctest::Contains("100 bytes"));
    CHECK_THROWS_WITH(gr::user_stack(small, sizeof small),
                      doctest::Contains(std::to_string(gr::min_stack_size).c_str()));
    CHECK(gr::stack_statistics().live == 0);
  }

  TEST_CASE("user_stack applies the minimum size after aligning the memory to 16 bytes") {
    alignas(16) static unsigned char buf[gr::min_stack_size + 32];
    CHECK_THROWS_AS(gr::user_stack(buf + 1, gr::min_stack_size), gr::error);
    gr::stack s = gr::user_stack(buf, gr::min_stack_size);
    CHECK(s.size == gr::min_stack_size);
    gr::release_stack(s);
    CHECK(gr::stack_statistics().live == 0);
  }

  TEST_CASE("releasing an empty stack does nothing") {
    const auto before = gr::stack_statistics();
    gr::release_stack(gr::stack{});
    CHECK(gr::stack_statistics().live == before.live);
    CHECK(gr::stack_statistics().pooled == before.pooled);
  }
}
