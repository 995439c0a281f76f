#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <cstddef>
#include <memory>
#include <string>

using gr_test::num;
using gr_test::value;

TEST_SUITE("greenlet.create") {
  TEST_CASE("a new greenlet has its parent and stack size and runs nothing until the first switch") {
    bool ran = false;
    gr::greenlet parent([](void*) -> void* { return nullptr; });
    gr::greenlet g(
        [&](void*) -> void* {
          ran = true;
          return nullptr;
        },
        &parent, 128 * 1024);
    CHECK_FALSE(ran);
    CHECK_FALSE(g.started());
    CHECK(g.parent() == &parent);
    CHECK(g.stack_region().size >= 128 * 1024);
    CHECK(g.stack_region().size < 128 * 1024 + 4096 * 2);
    CHECK(g.stack_region());
    CHECK(gr::greenlet::live_count() == 2);
  }

  TEST_CASE("a null parent means the root of the thread") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    CHECK(g.parent() == gr::greenlet::root());
    CHECK_FALSE(g.is_root());
    CHECK(gr::greenlet::root()->is_root());
    CHECK(gr::greenlet::root()->parent() == nullptr);
  }

  TEST_CASE("a stack size of 0 picks the default stack size") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    CHECK(g.stack_region().size == gr::default_stack_size);
  }

  TEST_CASE("a tiny stack size is rounded up to the minimum") {
    gr::greenlet g([](void* a) -> void* { return a; }, nullptr, 1);
    CHECK(g.stack_region().size == gr::min_stack_size);
    CHECK(value(g.switch_to(num(7))) == 7);
  }

  TEST_CASE("an empty start function is rejected with gr::error") {
    CHECK_THROWS_AS(gr::greenlet(gr::greenlet::function{}), gr::error);
    CHECK_THROWS_WITH(gr::greenlet(gr::greenlet::function{}), doctest::Contains("start function is empty"));
    CHECK(gr::greenlet::live_count() == 0);
    CHECK(gr::stack_statistics().live == 0);
  }

  TEST_CASE("a greenlet runs on caller-supplied memory without allocating a stack") {
    constexpr std::size_t size = 64 * 1024;
    auto memory = std::make_unique<unsigned char[]>(size);
    const auto before = gr::stack_statistics();
    {
      gr::greenlet g([&](void* a) -> void* {
        int local = 0;
        CHECK(static_cast<void*>(&local) > static_cast<void*>(memory.get()));
        CHECK(static_cast<void*>(&local) < static_cast<void*>(memory.get() + size));
        return a;
      }, nullptr, gr::user_stack(memory.get(), size));
      const gr::stack& s = g.stack_region();
      CHECK(s.origin == gr::stack::kind::user);
      CHECK(s.base >= static_cast<void*>(memory.get()));
      CHECK(s.top() <= static_cast<void*>(memory.get() + size));
      CHECK(value(g.switch_to(num(5))) == 5);
      const auto during = gr::stack_statistics();
      CHECK(during.guarded_live == before.guarded_live);
      CHECK(during.unguarded_slots == before.unguarded_slots);
      CHECK(during.pooled == before.pooled);
      CHECK(during.live == before.live + 1);  // the wrapped stack is counted while in use
    }
    // Destroying the greenlet forgets the stack (see the leak check) and leaves the memory alone.
    CHECK(gr::stack_statistics().live == before.live);
    CHECK(gr::stack_statistics().pooled == before.pooled);
  }

  TEST_CASE("a greenlet on caller-supplied memory can be suspended and destroyed") {
    constexpr std::size_t size = 32 * 1024;
    auto memory = std::make_unique<unsigned char[]>(size);
    bool unwound = false;
    struct guard {
      bool& flag;
      ~guard() { flag = true; }
    };
    {
      gr::greenlet* main = gr::greenlet::current();
      gr::greenlet g([&](void*) -> void* {
        guard gd{unwound};
        main->switch_to();
        return nullptr;
      }, nullptr, gr::user_stack(memory.get(), size));
      g.switch_to();
      CHECK(g.active());
    }
    CHECK(unwound);
  }

  TEST_CASE("describe names a greenlet by its name or else its address") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    CHECK(g.describe().find("greenlet 0x") == 0);
    g.set_name("worker");
    CHECK(g.name() == "worker");
    CHECK(g.describe() == "greenlet 'worker'");
    CHECK(gr::greenlet::root()->describe().find("root greenlet") == 0);
  }
}
