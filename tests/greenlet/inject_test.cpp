#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <stdexcept>
#include <string>

using gr_test::arg;
using gr_test::on_stack_of;
using gr_test::text;

TEST_SUITE("greenlet.inject") {
  TEST_CASE("an empty injection is refused naming the greenlet") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    g.set_name("target");
    CHECK_THROWS_WITH_AS(g.inject(nullptr), doctest::Contains("gr::greenlet::inject: an empty function for greenlet 'target'"),
                         gr::error);
    g.switch_to();
    CHECK(g.dead());
  }

  TEST_CASE("an injected function runs once on the target's stack before it resumes") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet g([&](void*) -> void* {
      for (;;) {
        void* r = main->switch_to();
        log += std::string("resumed:") + text(r) + ";";
      }
    });
    g.switch_to();
    bool on_target_stack = false;
    gr::greenlet* running = nullptr;
    void* inject_arg = nullptr;
    g.inject([&](void* a) {
      int local = 0;
      on_target_stack = on_stack_of(g, &local);
      running = gr::greenlet::current();
      inject_arg = a;
      log += "injected;";
    });
    g.switch_to(arg("x"));
    CHECK(log == "injected;resumed:x;");
    CHECK(on_target_stack);
    CHECK(running == &g);
    CHECK(text(inject_arg) == std::string("x"));
    g.switch_to(arg("y"));  // runs once only
    CHECK(log == "injected;resumed:x;resumed:y;");
  }

  TEST_CASE("an injected function runs before an unstarted greenlet's start function") {
    std::string log;
    bool on_target_stack = false;
    gr::greenlet g([&](void* a) -> void* {
      log += std::string("fn:") + text(a) + ";";
      return nullptr;
    });
    g.inject([&](void* a) {
      int local = 0;
      on_target_stack = on_stack_of(g, &local);
      log += std::string("inject:") + text(a) + ";";
    });
    g.switch_to(arg("first"));
    CHECK(log == "inject:first;fn:first;");
    CHECK(on_target_stack);
  }

  TEST_CASE("an injection into an unstarted greenlet runs once however often it resumes") {
    gr::greenlet* main = gr::greenlet::current();
    int injected = 0;
    int resumed = 0;
    gr::greenlet g([&](void*) -> void* {
      for (;;) {
        main->switch_to();
        ++resumed;
      }
    });
    g.inject([&](void*) { ++injected; });
    g.switch_to();
    g.switch_to();
    g.switch_to();
    CHECK(injected == 1);
    CHECK(resumed == 2);
  }

  TEST_CASE("an injected function gets the value a dying child resumes its target with") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet parent([&](void*) -> void* {
      void* r = main->switch_to();
      log += std::string("parent resumed:") + text(r) + ";";
      return nullptr;
    });
    gr::greenlet child([](void*) -> void* { return arg("child's result"); }, &parent);
    parent.switch_to();
    parent.inject([&](void* a) { log += std::string("inject:") + text(a) + ";"; });
    child.switch_to();
    CHECK(log == "inject:child's result;parent resumed:child's result;");
    CHECK(parent.dead());
  }

  TEST_CASE("an injected throw is raised at the target's resume point") {
    gr::greenlet* main = gr::greenlet::current();
    std::string seen;
    bool on_target_stack = false;
    gr::greenlet g([&](void*) -> void* {
      try {
        main->switch_to();
        seen = "no exception";
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      return arg("carried on");
    });
    g.switch_to();
    g.inject([&](void*) {
      int local = 0;
      on_target_stack = on_stack_of(g, &local);
      throw std::runtime_error("injected");
    });
    CHECK(text(g.switch_to()) == std::string("carried on"));
    CHECK(seen == "injected");
    CHECK(on_target_stack);
  }

  TEST_CASE("an uncaught injected throw kills the target and reaches its parent") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet g([&](void*) -> void* {
      main->switch_to();
      return nullptr;
    });
    g.switch_to();
    g.inject([](void*) { throw std::runtime_error("injected and uncaught"); });
    CHECK_THROWS_WITH_AS(g.switch_to(), "injected and uncaught", std::runtime_error);
    CHECK(g.dead());
  }

  TEST_CASE("an injected throw into an unstarted greenlet kills it before its start function runs") {
    bool ran = false;
    gr::greenlet g([&](void*) -> void* {
      ran = true;
      return nullptr;
    });
    g.inject([](void*) { throw std::runtime_error("before start"); });
    CHECK_THROWS_WITH_AS(g.switch_to(), "before start", std::runtime_error);
    CHECK_FALSE(ran);
    CHECK(g.dead());
  }

  TEST_CASE("a later injection replaces one not yet run") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet g([&](void*) -> void* {
      main->switch_to();
      return nullptr;
    });
    g.switch_to();
    g.inject([&](void*) { log += "first;"; });
    g.inject([&](void*) { log += "second;"; });
    g.switch_to();
    CHECK(log == "second;");
  }

  TEST_CASE("inject into a dead or the running greenlet is a gr::error") {
    gr::greenlet g([](void*) -> void* {
      CHECK_THROWS_AS(gr::greenlet::current()->inject([](void*) {}), gr::error);
      return nullptr;
    });
    g.switch_to();
    REQUIRE(g.dead());
    CHECK_THROWS_AS(g.inject([](void*) {}), gr::error);
    CHECK_THROWS_WITH(g.inject([](void*) {}), doctest::Contains("is dead"));
    CHECK_THROWS_AS(gr::greenlet::root()->inject([](void*) {}), gr::error);  // the root is running
  }
}
