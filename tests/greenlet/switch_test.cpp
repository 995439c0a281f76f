#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <string>

using gr_test::arg;
using gr_test::num;
using gr_test::text;
using gr_test::value;

TEST_SUITE("greenlet.switch") {
  TEST_CASE("values travel both ways through switch_to") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet g([&](void* a) -> void* {
      log += text(a);
      void* back = main->switch_to(arg("B"));
      log += text(back);
      return arg("D");
    });
    void* r = g.switch_to(arg("A"));
    log += text(r);
    r = g.switch_to(arg("C"));
    log += text(r);
    CHECK(log == "ABCD");
    CHECK(g.dead());
  }

  TEST_CASE("the first switch passes its argument to the start function") {
    void* seen = nullptr;
    gr::greenlet g([&](void* a) -> void* {
      seen = a;
      return nullptr;
    });
    g.switch_to(num(42));
    CHECK(value(seen) == 42);
  }

  TEST_CASE("the value the start function returns comes out of the parent's switch_to") {
    gr::greenlet g([](void* a) -> void* { return num(value(a) * 2); });
    CHECK(value(g.switch_to(num(21))) == 42);
    CHECK(g.dead());
  }

  TEST_CASE("a later switch resumes the greenlet where it switched away") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet counter([&](void*) -> void* {
      for (std::intptr_t i = 0; i < 5; ++i) main->switch_to(num(i));
      return num(-1);
    });
    for (std::intptr_t i = 0; i < 5; ++i) CHECK(value(counter.switch_to()) == i);
    CHECK(value(counter.switch_to()) == -1);
    CHECK(counter.dead());
  }

  TEST_CASE("two greenlets ping-pong without going through the root") {
    std::string log;
    gr::greenlet* ping = nullptr;
    gr::greenlet* pong = nullptr;
    gr::greenlet a([&](void* x) -> void* {
      for (int i = 0; i < 3; ++i) {
        log += 'a';
        x = pong->switch_to(x);
      }
      return x;
    });
    gr::greenlet b([&](void* x) -> void* {
      for (;;) {
        log += 'b';
        x = ping->switch_to(num(value(x) + 1));
      }
    });
    ping = &a;
    pong = &b;
    CHECK(value(a.switch_to(num(0))) == 3);
    CHECK(log == "ababab");
    CHECK(a.dead());
    CHECK(b.active());  // suspended in its loop; its destruction unwinds it
  }

  TEST_CASE("switching to the running greenlet returns the argument at once") {
    CHECK(text(gr::greenlet::current()->switch_to(arg("self"))) == std::string("self"));
    gr::greenlet g([](void* a) -> void* {
      void* back = gr::greenlet::current()->switch_to(arg("inner"));
      CHECK(text(back) == std::string("inner"));
      return a;
    });
    CHECK(text(g.switch_to(arg("outer"))) == std::string("outer"));
  }

  TEST_CASE("switching to a dead greenlet resumes its nearest live ancestor with the argument") {
    gr::greenlet* main = gr::greenlet::current();
    void* resumed_with = nullptr;
    gr::greenlet parent([&](void*) -> void* {
      resumed_with = main->switch_to(arg("parent waiting"));
      return arg("parent done");
    });
    gr::greenlet child([](void*) -> void* { return nullptr; });  // parent: the root, for now
    child.switch_to();
    REQUIRE(child.dead());
    CHECK(text(parent.switch_to()) == std::string("parent waiting"));
    child.set_parent(&parent);
    CHECK(text(child.switch_to(arg("via the dead child"))) == std::string("parent done"));
    CHECK(text(resumed_with) == std::string("via the dead child"));
    CHECK(parent.dead());
  }

  TEST_CASE("switching to a dead greenlet whose ancestors are all dead lands in the root") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    g.switch_to();
    REQUIRE(g.dead());
    CHECK(text(g.switch_to(arg("again"))) == std::string("again"));
    CHECK(gr::greenlet::current() == gr::greenlet::root());
  }

  TEST_CASE("the free function switch_to is the member switch_to") {
    gr::greenlet g([](void* a) -> void* { return num(value(a) + 1); });
    CHECK(value(gr::switch_to(g, num(1))) == 2);
  }

  TEST_CASE("a million switches keep their order") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet g([&](void* a) -> void* {
      for (;;) a = main->switch_to(num(value(a) + 1));
    });
    std::intptr_t n = 0;
    bool in_order = true;
    for (int i = 0; i < 1'000'000 / 2; ++i) {
      const std::intptr_t next = value(g.switch_to(num(n)));
      in_order = in_order && next == n + 1;
      n = next;
    }
    CHECK(in_order);
    CHECK(n == 500'000);
  }
}
