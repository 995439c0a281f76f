#include <doctest/doctest.h>

#include "slab_layout.hpp"

#include <gr/runtime/stack.hpp>

#include <algorithm>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

TEST_SUITE("runtime.pool") {
  TEST_CASE("a released stack is reused by the next allocation of the same size") {
    gr::stack a = gr::allocate_stack(64 * 1024);
    void* base = a.base;
    gr::release_stack(a);
    gr::stack b = gr::allocate_stack(64 * 1024);
    CHECK(b.base == base);
    gr::release_stack(b);
  }

  TEST_CASE("the most recently released stack is handed out first") {
    gr::stack a = gr::allocate_stack(64 * 1024);
    gr::stack b = gr::allocate_stack(64 * 1024);
    gr::release_stack(a);
    gr::release_stack(b);
    gr::stack c = gr::allocate_stack(64 * 1024);
    gr::stack d = gr::allocate_stack(64 * 1024);
    CHECK(c.base == b.base);
    CHECK(d.base == a.base);
    gr::release_stack(c);
    gr::release_stack(d);
  }

  TEST_CASE("a pooled stack is reused only for the same rounded size") {
    gr::trim_stack_pool();
    gr::stack a = gr::allocate_stack(64 * 1024);
    void* base = a.base;
    gr::release_stack(a);
    gr::stack other = gr::allocate_stack(128 * 1024);
    CHECK(other.base != base);
    gr::stack same = gr::allocate_stack(64 * 1024 - 100);  // rounds to the same 64 KiB
    CHECK(same.base == base);
    gr::release_stack(other);
    gr::release_stack(same);
  }

  TEST_CASE("successive new stacks get successive cache colours and a pooled stack keeps its own") {
    gr::trim_stack_pool();
    std::vector<gr::stack> v;
    for (unsigned i = 0; i < gr::stack::colours + 2; ++i) v.push_back(gr::allocate_stack(64 * 1024));
    for (std::size_t i = 1; i < v.size(); ++i) {
      CAPTURE(i);
      CHECK(v[i].colour < gr::stack::colours);
      CHECK(v[i].colour == (v[i - 1].colour + 1) % gr::stack::colours);
    }
    const gr::stack last = v.back();
    v.pop_back();
    gr::release_stack(last);
    gr::stack again = gr::allocate_stack(64 * 1024);
    CHECK(again.base == last.base);
    CHECK(again.colour == last.colour);
    gr::release_stack(again);
    for (auto& s : v) gr::release_stack(s);
  }

  TEST_CASE("a colour costs a small stack at most an eighth of it") {
    gr::trim_stack_pool();
    std::vector<gr::stack> small, big;
    for (unsigned i = 0; i < gr::stack::colours; ++i) small.push_back(gr::allocate_stack(gr::min_stack_size));
    for (unsigned i = 0; i < gr::stack::colours; ++i) big.push_back(gr::allocate_stack(64 * 1024));
    std::vector<std::size_t> small_offsets;
    for (const auto& s : small) {
      CHECK(s.colour_offset() < s.size / 8);
      CHECK(s.colour_offset() % gr::stack::colour_step == 0);
      small_offsets.push_back(s.colour_offset());
    }
    CHECK(std::set<std::size_t>(small_offsets.begin(), small_offsets.end()).size() ==
          gr::min_stack_size / 8 / gr::stack::colour_step);  // every offset the eighth allows
    for (const auto& s : big) CHECK(s.colour_offset() == s.colour * gr::stack::colour_step);
    for (auto& s : small) gr::release_stack(s);
    for (auto& s : big) gr::release_stack(s);
  }

  TEST_CASE("stack statistics count live and pooled stacks") {
    gr::trim_stack_pool();
    const auto start = gr::stack_statistics();
    CHECK(start.pooled == 0);
    gr::stack a = gr::allocate_stack(64 * 1024);
    gr::stack b = gr::allocate_stack(64 * 1024);
    CHECK(gr::stack_statistics().live == start.live + 2);
    CHECK(gr::stack_statistics().guarded_live == start.guarded_live + 2);
    gr::release_stack(a);
    CHECK(gr::stack_statistics().live == start.live + 1);
    CHECK(gr::stack_statistics().pooled == 1);
    gr::release_stack(b);
    CHECK(gr::stack_statistics().pooled == 2);
    CHECK(gr::stack_statistics().guarded_live == start.guarded_live + 2);  // pooled ones still mapped
    gr::trim_stack_pool();
    CHECK(gr::stack_statistics().pooled == 0);
    CHECK(gr::stack_statistics().guarded_live == start.guarded_live);
  }

  TEST_CASE("a reused unguarded stack gets its canary back") {
    gr_test::slab_layout canaries(false);
    gr::trim_stack_pool();
    const std::size_t old = gr::set_guard_budget(0);
    gr::stack a = gr::allocate_stack(24 * 1024);
    REQUIRE(a.has_canary());
    *static_cast<unsigned char*>(a.base) = 0;  // broken while in use
    gr::release_stack(a);
    gr::stack b = gr::allocate_stack(24 * 1024);
    CHECK(b.base == a.base);
    CHECK(gr::detail::canary_intact(b));
    gr::release_stack(b);
    gr::set_guard_budget(old);
    gr::trim_stack_pool();
  }

  TEST_CASE("a slab slot returned by a trim is reused by a later slab allocation") {
    // Each layout on a size of its own: a slab class's free list keeps slots of both.
    bool guard_pages = false;
    std::size_t size = 24 * 1024;
    SUBCASE("canaries") {}
    SUBCASE("guard pages") {
      guard_pages = true;
      size = 28 * 1024;
    }
    gr_test::slab_layout layout(guard_pages);
    gr::trim_stack_pool();
    const std::size_t old = gr::set_guard_budget(0);
    gr::stack a = gr::allocate_stack(size);
    const std::size_t slots = gr::stack_statistics().unguarded_slots;
    gr::release_stack(a);
    gr::trim_stack_pool();
    gr::stack b = gr::allocate_stack(size);
    CHECK(b.origin == a.origin);
    CHECK(b.base == a.base);
    CHECK(gr::stack_statistics().unguarded_slots == slots);  // no new slab
    gr::release_stack(b);
    gr::set_guard_budget(old);
    gr::trim_stack_pool();
  }

  TEST_CASE("each thread has its own pool") {
    gr::trim_stack_pool();
    gr::stack mine = gr::allocate_stack(64 * 1024);
    gr::release_stack(mine);
    void* theirs = nullptr;
    long long their_live = -1;
    std::thread([&] {
      gr::stack s = gr::allocate_stack(64 * 1024);
      theirs = s.base;
      gr::release_stack(s);
      their_live = gr::stack_statistics().live;
    }).join();  // the thread's pool is unmapped when it exits
    CHECK(theirs != mine.base);
    CHECK(their_live == 0);
    CHECK(gr::stack_statistics().pooled == 1);
    gr::trim_stack_pool();
  }

  TEST_CASE("the pool keeps every released guarded stack however many and none is mapped again") {
    // Past the 1,024 stacks a class once held, each release unmapped its stack and the next
    // allocation mapped a new one: 10 to 20 us a spawn for a program with thousands of tasks.
    gr::trim_stack_pool();
    constexpr std::size_t n = 3000;
    const auto start = gr::stack_statistics();
    std::vector<gr::stack> first;
    for (std::size_t i = 0; i < n; ++i) first.push_back(gr::allocate_stack(32 * 1024));
    std::set<void*> bases;
    for (const auto& s : first) bases.insert(s.base);
    const auto mapped = gr::stack_statistics();
    for (auto& s : first) gr::release_stack(s);
    CHECK(gr::stack_statistics().pooled == n);
    CHECK(gr::stack_statistics().guarded_live == mapped.guarded_live);  // none unmapped
    CHECK(gr::stack_statistics().unguarded_slots == mapped.unguarded_slots);

    std::vector<gr::stack> again;
    for (std::size_t i = 0; i < n; ++i) again.push_back(gr::allocate_stack(32 * 1024));
    std::size_t reused = 0;
    for (const auto& s : again) reused += bases.count(s.base);
    CHECK(reused == n);
    CHECK(gr::stack_statistics().pooled == 0);
    CHECK(gr::stack_statistics().guarded_live == mapped.guarded_live);  // none mapped anew
    CHECK(gr::stack_statistics().unguarded_slots == mapped.unguarded_slots);
    for (auto& s : again) gr::release_stack(s);
    gr::trim_stack_pool();
    CHECK(gr::stack_statistics().pooled == 0);
    CHECK(gr::stack_statistics().guarded_live == start.guarded_live);
  }

  TEST_CASE("slab stacks past a thousand a size go back to their slab") {
    // Past the guard budget (a million tasks' worth of stacks), the pool keeps a bounded number,
    // so a burst does not leave gigabytes resident; the rest return to the slab.
    const std::size_t old_budget = gr::set_guard_budget(0);
    gr::trim_stack_pool();
    std::vector<gr::stack> v;
    for (int i = 0; i < 1500; ++i) v.push_back(gr::allocate_stack(24 * 1024));
    for (const auto& s : v) CHECK(gr_test::from_slab(s));
    for (auto& s : v) gr::release_stack(s);
    CHECK(gr::stack_statistics().pooled == 1024);
    gr::trim_stack_pool();
    gr::set_guard_budget(old_budget);
  }

  TEST_CASE("a slab stack given back to its slab keeps no page resident not even its top page") {
    // The top page of a slot also holds the canary of the slot above, and stayed resident for
    // good: after a burst past the guard budget, about 4 KiB a stack ever used, trim or not.
    gr_test::slab_layout canaries(false);
    const std::size_t old_budget = gr::set_guard_budget(0);
    gr::trim_stack_pool();
    constexpr std::size_t size = 24 * 1024;
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    auto resident = [&](const gr::stack& s) {
      const auto lo = reinterpret_cast<std::uintptr_t>(s.base) / page * page;
      const auto hi = (reinterpret_cast<std::uintptr_t>(s.top()) + page - 1) / page * page;
      std::vector<unsigned char> in((hi - lo) / page);
      REQUIRE(::mincore(reinterpret_cast<void*>(lo), hi - lo, in.data()) == 0);
      std::size_t n = 0;
      for (unsigned char c : in) n += c & 1;
      return n;
    };
    std::vector<gr::stack> v;
    for (int i = 0; i < 16; ++i) v.push_back(gr::allocate_stack(size));
    for (const auto& s : v) {
      REQUIRE(s.origin == gr::stack::kind::unguarded);
      for (std::size_t off = page; off < size; off += page) static_cast<volatile char*>(s.top())[-off] = 1;
      static_cast<volatile char*>(s.top())[-1] = 1;  // the top page, where a task's frames live
    }
    // Two neighbours: the lower one's top page holds the upper one's canary, which its return
    // must leave intact while the upper one is in use.
    auto upper = std::find_if(v.begin(), v.end(), [&](const gr::stack& s) {
      return std::any_of(v.begin(), v.end(), [&](const gr::stack& l) { return l.top() == s.base; });
    });
    REQUIRE(upper != v.end());
    gr::stack up = *upper;
    v.erase(upper);
    for (auto& s : v) gr::release_stack(s);
    gr::trim_stack_pool();  // back to the slab
    CHECK(gr::detail::canary_intact(up));
    for (const auto& s : v) CHECK(resident(s) <= 1);  // at most the page below the one in use
    gr::stack kept = up;
    gr::release_stack(up);
    gr::trim_stack_pool();
    std::size_t left = 0;
    for (const auto& s : v) left += resident(s);
    CHECK(left == 0);
    CHECK(resident(kept) == 0);
    gr::set_guard_budget(old_budget);
  }

  TEST_CASE("a stack of another size takes back the guard budget this thread's pool holds") {
    // A burst of small tasks leaves the budget in the pool; a deep recursion then asks for a big
    // stack, which must still get a guard page rather than a slab slot.
    gr::trim_stack_pool();
    const std::size_t old_budget = gr::set_guard_budget(gr::stack_statistics().guarded_live + 8);
    std::vector<gr::stack> small;
    for (int i = 0; i < 8; ++i) small.push_back(gr::allocate_stack(32 * 1024));
    for (const auto& s : small) CHECK(s.origin == gr::stack::kind::guarded);
    for (auto& s : small) gr::release_stack(s);
    CHECK(gr::stack_statistics().pooled == 8);  // the whole budget, pooled
    gr::stack big = gr::allocate_stack(512 * 1024);
    CHECK(big.origin == gr::stack::kind::guarded);
    CHECK(gr::stack_statistics().pooled == 0);  // the small ones were unmapped for it
    gr::release_stack(big);
    gr::trim_stack_pool();
    gr::set_guard_budget(old_budget);
  }
}
