#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <string>

using gr_test::arg;
using gr_test::text;

TEST_SUITE("greenlet.parent") {
  TEST_CASE("root and current are the same greenlet outside any greenlet") {
    gr::greenlet* root = gr::greenlet::root();
    REQUIRE(root != nullptr);
    CHECK(gr::greenlet::current() == root);
    CHECK(root->is_root());
    CHECK(root->started());
    CHECK(root->active());
    CHECK_FALSE(root->dead());
    CHECK(root->parent() == nullptr);
    CHECK(gr::greenlet::root() == root);  // made once per thread
  }

  TEST_CASE("current is the running greenlet and root stays the thread's root") {
    gr::greenlet* root = gr::greenlet::root();
    gr::greenlet* seen_current = nullptr;
    gr::greenlet* seen_root = nullptr;
    gr::greenlet g([&](void*) -> void* {
      seen_current = gr::greenlet::current();
      seen_root = gr::greenlet::root();
      return nullptr;
    });
    g.switch_to();
    CHECK(seen_current == &g);
    CHECK(seen_root == root);
    CHECK(gr::greenlet::current() == root);
  }

  TEST_CASE("a finished greenlet resumes its parent and not the greenlet that switched to it") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet a([&](void*) -> void* {
      void* r = main->switch_to(arg("a waits"));
      log += text(r);
      return arg("a done");
    });
    gr::greenlet b([](void*) -> void* { return arg("b's result"); }, &a);
    CHECK(text(a.switch_to()) == std::string("a waits"));
    CHECK(text(b.switch_to()) == std::string("a done"));  // b -> a -> main
    CHECK(log == "b's result");
  }

  TEST_CASE("a greenlet whose parent is dead returns to the nearest live ancestor") {
    gr::greenlet* main = gr::greenlet::current();
    void* a_got = nullptr;
    gr::greenlet a([&](void*) -> void* {
      a_got = main->switch_to(arg("a waits"));
      return arg("a done");
    });
    gr::greenlet b([](void*) -> void* { return arg("b done"); }, &a);
    gr::greenlet c([](void*) -> void* { return arg("c's result"); }, &b);
    CHECK(text(a.switch_to()) == std::string("a waits"));
    b.set_parent(main);
    CHECK(text(b.switch_to()) == std::string("b done"));
    b.set_parent(&a);
    REQUIRE(b.dead());
    // c's parent b is dead: c's result goes to a, the nearest live ancestor.
    CHECK(text(c.switch_to()) == std::string("a done"));
    CHECK(text(a_got) == std::string("c's result"));
  }

  TEST_CASE("a greenlet whose ancestors are all dead returns to the root") {
    gr::greenlet a([](void*) -> void* { return nullptr; });
    gr::greenlet b([](void*) -> void* { return nullptr; }, &a);
    gr::greenlet c([](void*) -> void* { return arg("c's result"); }, &b);
    a.switch_to();
    b.switch_to();
    REQUIRE(a.dead());
    REQUIRE(b.dead());
    CHECK(text(c.switch_to()) == std::string("c's result"));
  }

  TEST_CASE("an unstarted parent is started with the value its child returns") {
    void* parent_arg = nullptr;
    gr::greenlet parent([&](void* a) -> void* {
      parent_arg = a;
      return arg("parent done");
    });
    gr::greenlet child([](void*) -> void* { return arg("from child"); }, &parent);
    CHECK(text(child.switch_to()) == std::string("parent done"));
    CHECK(text(parent_arg) == std::string("from child"));
    CHECK(parent.dead());
  }

  TEST_CASE("set_parent changes where a finished greenlet goes") {
    gr::greenlet* main = gr::greenlet::current();
    void* got = nullptr;
    gr::greenlet p1([&](void*) -> void* {
      got = main->switch_to();
      return arg("p1 done");
    });
    gr::greenlet p2([&](void*) -> void* {
      got = main->switch_to();
      return arg("p2 done");
    });
    gr::greenlet child([](void*) -> void* { return arg("child done"); }, &p1);
    p1.switch_to();
    p2.switch_to();
    child.set_parent(&p2);
    CHECK(child.parent() == &p2);
    CHECK(text(child.switch_to()) == std::string("p2 done"));
    CHECK(text(got) == std::string("child done"));
    CHECK(p1.active());
  }

  TEST_CASE("set_parent rejects a cycle with gr::error naming both greenlets") {
    gr::greenlet a([](void*) -> void* { return nullptr; });
    gr::greenlet b([](void*) -> void* { return nullptr; }, &a);
    gr::greenlet c([](void*) -> void* { return nullptr; }, &b);
    a.set_name("alpha");
    c.set_name("gamma");
    CHECK_THROWS_AS(a.set_parent(&c), gr::error);
    try {
      a.set_parent(&c);
    } catch (const gr::error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("cycle") != std::string::npos);
      CHECK(msg.find("greenlet 'alpha'") != std::string::npos);
      CHECK(msg.find("greenlet 'gamma'") != std::string::npos);
    }
    CHECK(a.parent() == gr::greenlet::root());  // unchanged
    CHECK_THROWS_AS(a.set_parent(&a), gr::error);
  }

  TEST_CASE("set_parent rejects a null parent and a root's parent") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    g.set_name("orphan");
    CHECK_THROWS_AS(g.set_parent(nullptr), gr::error);
    CHECK_THROWS_WITH(g.set_parent(nullptr), doctest::Contains("greenlet 'orphan'"));
    CHECK(g.parent() == gr::greenlet::root());
    CHECK_THROWS_AS(gr::greenlet::root()->set_parent(&g), gr::error);
    CHECK(gr::greenlet::root()->parent() == nullptr);
  }
}
