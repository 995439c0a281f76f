// Built with -fno-omit-frame-pointer (see CMakeLists.txt): the frame-pointer walk needs it.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <vector>

using gr_test::num;
using gr_test::on_stack_of;
using gr_test::value;

namespace {

struct walk_result {
  int frames = 0;
  bool ended_in_null = false;     // the chain stopped at a zero link
  bool stayed_on_stack = true;    // every frame lay within the greenlet's stack
  bool went_up = true;            // each link pointed higher than the one before
};

// walk_frames: follows the saved frame-pointer links from the caller's frame until a null link.
[[gnu::noinline]] walk_result walk_frames(const gr::greenlet& g) {
  walk_result r;
  auto** fp = static_cast<void**>(__builtin_frame_address(0));
  while (fp && r.frames < 10'000) {
    if (!on_stack_of(g, fp)) {
      r.stayed_on_stack = false;
      return r;  // do not follow a link off the stack: it may point anywhere
    }
    ++r.frames;
    auto** next = static_cast<void**>(*fp);
    if (next && next <= fp) {
      r.went_up = false;
      return r;
    }
    fp = next;
  }
  r.ended_in_null = fp == nullptr;
  return r;
}

[[gnu::noinline]] walk_result walk_deeper(const gr::greenlet& g, int more) {
  if (more == 0) return walk_frames(g);
  walk_result r = walk_deeper(g, more - 1);
  asm volatile("" ::: "memory");  // keep the frames: no tail call
  return r;
}

const char* g_lowest = nullptr;

// recurse: `depth` frames of at least 256 bytes each; the read of pad after the call keeps every
// frame alive (no tail call, no loop).
[[gnu::noinline]] std::size_t recurse(std::size_t depth) {
  volatile char pad[256];
  pad[0] = 1;
  const char* here = const_cast<const char*>(&pad[0]);
  if (!g_lowest || here < g_lowest) g_lowest = here;
  const std::size_t below = depth == 0 ? 0 : recurse(depth - 1);
  return below + static_cast<std::size_t>(pad[0]);
}

}  // namespace

TEST_SUITE("greenlet.stack") {
  TEST_CASE("a greenlet's frames live on its own stack") {
    bool local_on_own_stack = false;
    gr::greenlet* self = nullptr;
    gr::greenlet g([&](void*) -> void* {
      int local = 0;
      self = gr::greenlet::current();
      local_on_own_stack = on_stack_of(*self, &local);
      return nullptr;
    });
    int main_local = 0;
    CHECK_FALSE(on_stack_of(g, &main_local));
    g.switch_to();
    CHECK(self == &g);
    CHECK(local_on_own_stack);
  }

  TEST_CASE("the frame-pointer chain of a greenlet ends within its own stack") {
    walk_result shallow;
    walk_result deep;
    gr::greenlet g([&](void*) -> void* {
      shallow = walk_frames(*gr::greenlet::current());
      deep = walk_deeper(*gr::greenlet::current(), 20);
      return nullptr;
    });
    g.switch_to();
    CHECK(shallow.stayed_on_stack);
    CHECK(shallow.went_up);
    CHECK(shallow.ended_in_null);
    CHECK(shallow.frames >= 2);
    CHECK(deep.stayed_on_stack);
    CHECK(deep.went_up);
    CHECK(deep.ended_in_null);
    CHECK(deep.frames >= shallow.frames + 20);
  }

  TEST_CASE("the frame-pointer chain of a resumed greenlet still ends within its stack") {
    gr::greenlet* main = gr::greenlet::current();
    walk_result after_resume;
    gr::greenlet g([&](void*) -> void* {
      main->switch_to();
      after_resume = walk_frames(*gr::greenlet::current());
      return nullptr;
    });
    g.switch_to();
    g.switch_to();
    CHECK(after_resume.stayed_on_stack);
    CHECK(after_resume.ended_in_null);
  }

  TEST_CASE("deep recursion works in a greenlet with a big stack") {
    constexpr std::size_t size = 16u << 20;
    constexpr std::size_t depth = 20'000;
    g_lowest = nullptr;
    gr::greenlet g([](void* a) -> void* { return num(static_cast<std::intptr_t>(recurse(value(a)))); },
                   nullptr, size);
    CHECK(static_cast<std::size_t>(value(g.switch_to(num(depth)))) == depth + 1);
    REQUIRE(g_lowest != nullptr);
    CHECK(on_stack_of(g, g_lowest));
    const auto used = static_cast<std::size_t>(static_cast<const char*>(g.stack_region().top()) - g_lowest);
    CHECK(used > gr::default_stack_size);  // far more than a default stack would have held
    CHECK(gr::detail::canary_intact(g.stack_region()));
  }

  TEST_CASE("a greenlet's first frames start its stack's cache colour below the top") {
    gr::trim_stack_pool();  // fresh stacks: successive colours
    gr::greenlet* main = gr::greenlet::current();
    std::vector<std::unique_ptr<gr::greenlet>> gs;
    for (unsigned i = 0; i < gr::stack::colours; ++i) {
      gs.push_back(std::make_unique<gr::greenlet>([main](void*) -> void* { return main->switch_to(); }));
      gs.back()->switch_to();  // start it: it suspends at once, at the same depth as every other
    }
    std::set<unsigned> colours;
    std::set<std::ptrdiff_t> uncoloured_depths;
    for (const auto& g : gs) {
      const gr::stack& s = g->stack_region();
      colours.insert(s.colour);
      const auto depth = static_cast<const char*>(s.top()) - static_cast<const char*>(g->suspended_sp());
      uncoloured_depths.insert(depth - static_cast<std::ptrdiff_t>(s.colour_offset()));
    }
    CHECK(colours.size() == gr::stack::colours);
    CHECK(uncoloured_depths.size() == 1);  // each is exactly its colour deeper than the others
    for (auto& g : gs) g->switch_to();     // let them finish
  }
}
