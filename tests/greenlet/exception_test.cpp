#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <exception>
#include <stdexcept>
#include <string>

using gr_test::arg;
using gr_test::text;

namespace {

// what_of: the message of the exception `e` holds, or "" if it holds none or a non-std one.
std::string what_of(std::exception_ptr e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

struct set_on_destroy {
  bool& flag;
  ~set_on_destroy() { flag = true; }
};

}  // namespace

TEST_SUITE("greenlet.exception") {
  TEST_CASE("an exception escaping a greenlet is rethrown from its parent's switch_to") {
    bool unwound = false;
    gr::greenlet g([&](void*) -> void* {
      set_on_destroy s{unwound};
      throw std::runtime_error("boom");
    });
    CHECK_THROWS_WITH_AS(g.switch_to(), "boom", std::runtime_error);
    CHECK(unwound);
    CHECK(g.dead());
    CHECK(g.started());
    CHECK(gr::greenlet::current() == gr::greenlet::root());
  }

  TEST_CASE("an exception escaping a greenlet after a switch reaches the ancestor that resumes") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet g([&](void*) -> void* {
      main->switch_to();
      throw std::runtime_error("later");
    });
    g.switch_to();
    CHECK_THROWS_WITH_AS(g.switch_to(), "later", std::runtime_error);
    CHECK(g.dead());
    // The exception was taken by the resumer: switching to the dead greenlet raises nothing.
    CHECK(text(g.switch_to(arg("quiet"))) == std::string("quiet"));
  }

  TEST_CASE("an exception travels up a chain of two greenlets to the root") {
    bool outer_unwound = false;
    bool inner_unwound = false;
    gr::greenlet outer([&](void*) -> void* {
      set_on_destroy s{outer_unwound};
      gr::greenlet inner([&](void*) -> void* {
        set_on_destroy s2{inner_unwound};
        throw std::logic_error("from inner");
      }, gr::greenlet::current());
      inner.switch_to();  // rethrows here, in outer, which does not catch it
      CHECK(false);       // never reached
      return nullptr;
    });
    CHECK_THROWS_WITH_AS(outer.switch_to(), "from inner", std::logic_error);
    CHECK(inner_unwound);
    CHECK(outer_unwound);
    CHECK(outer.dead());
  }

  TEST_CASE("the ancestor that resumes can catch the exception and carry on") {
    gr::greenlet outer([&](void*) -> void* {
      gr::greenlet inner([](void*) -> void* { throw std::runtime_error("caught by outer"); },
                         gr::greenlet::current());
      std::string seen;
      try {
        inner.switch_to();
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      CHECK(seen == "caught by outer");
      CHECK(inner.dead());
      return arg("outer finished");
    });
    CHECK(text(outer.switch_to()) == std::string("outer finished"));
  }

  TEST_CASE("an exception skips a dead parent and reaches the nearest live ancestor") {
    gr::greenlet* main = gr::greenlet::current();
    std::string seen;
    gr::greenlet keeper([&](void*) -> void* {
      try {
        main->switch_to();
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      return arg("keeper done");
    });
    gr::greenlet dead_parent([](void*) -> void* { return nullptr; }, &keeper);
    gr::greenlet thrower([](void*) -> void* { throw std::runtime_error("to keeper"); }, &dead_parent);
    keeper.switch_to();
    dead_parent.set_parent(main);
    dead_parent.switch_to();
    dead_parent.set_parent(&keeper);
    REQUIRE(dead_parent.dead());
    CHECK(text(thrower.switch_to()) == std::string("keeper done"));
    CHECK(seen == "to keeper");
  }

  TEST_CASE("an exception escaping into an unstarted parent kills the parent without running it") {
    bool parent_ran = false;
    gr::greenlet parent([&](void*) -> void* {
      parent_ran = true;
      return nullptr;
    });
    gr::greenlet child([](void*) -> void* { throw std::runtime_error("up two"); }, &parent);
    CHECK_THROWS_WITH_AS(child.switch_to(), "up two", std::runtime_error);
    CHECK_FALSE(parent_ran);
    CHECK(parent.dead());
    CHECK(child.dead());
  }

  TEST_CASE("a non-std exception crosses greenlets too") {
    gr::greenlet g([](void*) -> void* { throw 42; });
    int caught = 0;
    try {
      g.switch_to();
    } catch (int v) {
      caught = v;
    }
    CHECK(caught == 42);
  }

  TEST_CASE("greenlet_exit escaping a greenlet is not re-raised in its parent") {
    gr::greenlet g([](void*) -> void* { throw gr::greenlet_exit{}; });
    void* r = arg("not null");
    CHECK_NOTHROW(r = g.switch_to());
    CHECK(r == nullptr);
    CHECK(g.dead());
  }
}

TEST_SUITE("greenlet.throw_in") {
  TEST_CASE("throw_in raises inside a suspended greenlet which can catch it and go on") {
    gr::greenlet* main = gr::greenlet::current();
    std::string seen;
    gr::greenlet g([&](void*) -> void* {
      try {
        main->switch_to(arg("waiting"));
        seen = "not raised";
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      return main->switch_to(arg("handled"));
    });
    CHECK(text(g.switch_to()) == std::string("waiting"));
    CHECK(text(g.throw_in(std::make_exception_ptr(std::runtime_error("thrown in")))) == std::string("handled"));
    CHECK(seen == "thrown in");
    CHECK(g.active());
    CHECK(text(g.switch_to(arg("end"))) == std::string("end"));
    CHECK(g.dead());
  }

  TEST_CASE("an exception thrown in and not caught is re-raised in the parent") {
    gr::greenlet* main = gr::greenlet::current();
    bool unwound = false;
    gr::greenlet g([&](void*) -> void* {
      set_on_destroy s{unwound};
      main->switch_to();
      return nullptr;
    });
    g.switch_to();
    CHECK_THROWS_WITH_AS(g.throw_in(std::make_exception_ptr(std::runtime_error("uncaught"))), "uncaught",
                         std::runtime_error);
    CHECK(unwound);
    CHECK(g.dead());
  }

  TEST_CASE("throw_in into an unstarted greenlet kills it without running and raises in its parent") {
    bool ran = false;
    gr::greenlet g([&](void*) -> void* {
      ran = true;
      return nullptr;
    });
    CHECK_THROWS_WITH_AS(g.throw_in(std::make_exception_ptr(std::runtime_error("never ran"))), "never ran",
                         std::runtime_error);
    CHECK_FALSE(ran);
    CHECK(g.dead());
  }

  TEST_CASE("throw_in into an unstarted greenlet raises in its suspended parent") {
    gr::greenlet* main = gr::greenlet::current();
    std::string seen;
    gr::greenlet parent([&](void*) -> void* {
      try {
        main->switch_to();
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      return arg("parent done");
    });
    bool ran = false;
    gr::greenlet child([&](void*) -> void* {
      ran = true;
      return nullptr;
    }, &parent);
    parent.switch_to();
    CHECK(text(child.throw_in(std::make_exception_ptr(std::runtime_error("to the parent")))) ==
          std::string("parent done"));
    CHECK(seen == "to the parent");
    CHECK_FALSE(ran);
  }

  TEST_CASE("throw_in into a dead greenlet raises in its nearest live ancestor") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    g.switch_to();
    REQUIRE(g.dead());
    // Its nearest live ancestor is the root, which is running: the exception comes straight back.
    CHECK_THROWS_WITH_AS(g.throw_in(std::make_exception_ptr(std::runtime_error("to root"))), "to root",
                         std::runtime_error);

    gr::greenlet* main = gr::greenlet::current();
    std::string seen;
    gr::greenlet parent([&](void*) -> void* {
      try {
        main->switch_to();
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      return nullptr;
    });
    parent.switch_to();
    g.set_parent(&parent);
    g.throw_in(std::make_exception_ptr(std::runtime_error("to the live ancestor")));
    CHECK(seen == "to the live ancestor");
    CHECK(parent.dead());
  }

  TEST_CASE("throw_in into the running greenlet raises at once") {
    gr::greenlet g([](void*) -> void* {
      std::string seen;
      try {
        gr::greenlet::current()->throw_in(std::make_exception_ptr(std::runtime_error("self")));
      } catch (const std::runtime_error& e) {
        seen = e.what();
      }
      CHECK(seen == "self");
      return nullptr;
    });
    g.switch_to();
    CHECK(g.dead());
  }

  TEST_CASE("throw_in with a null exception is a gr::error") {
    gr::greenlet g([](void*) -> void* { return nullptr; });
    CHECK_THROWS_AS(g.throw_in(nullptr), gr::error);
    CHECK_FALSE(g.started());
  }

  TEST_CASE("greenlet_exit thrown in ends the greenlet quietly") {
    gr::greenlet* main = gr::greenlet::current();
    bool unwound = false;
    gr::greenlet g([&](void*) -> void* {
      set_on_destroy s{unwound};
      main->switch_to();
      return arg("not this");
    });
    g.switch_to();
    void* r = arg("not null");
    CHECK_NOTHROW(r = g.throw_in(std::make_exception_ptr(gr::greenlet_exit{})));
    CHECK(r == nullptr);
    CHECK(unwound);
    CHECK(g.dead());
  }
}

TEST_SUITE("greenlet.exception_state") {
  TEST_CASE("switching from inside a catch block keeps the exception being handled") {
    gr::greenlet* main = gr::greenlet::current();
    std::exception_ptr g_saw_at_start = std::make_exception_ptr(0);
    std::string g_after_return;
    gr::greenlet g([&](void*) -> void* {
      g_saw_at_start = std::current_exception();
      try {
        throw std::logic_error("g's own");
      } catch (const std::logic_error&) {
        main->switch_to();  // suspended while handling g's own exception
        g_after_return = what_of(std::current_exception());
      }
      CHECK(std::current_exception() == nullptr);
      return nullptr;
    });
    std::string main_after_first;
    std::string main_after_second;
    try {
      throw std::runtime_error("main's");
    } catch (const std::runtime_error&) {
      g.switch_to();
      main_after_first = what_of(std::current_exception());
      g.switch_to();
      main_after_second = what_of(std::current_exception());
    }
    CHECK(g_saw_at_start == nullptr);
    CHECK(main_after_first == "main's");
    CHECK(g_after_return == "g's own");
    CHECK(main_after_second == "main's");
    CHECK(std::current_exception() == nullptr);
    CHECK(g.dead());
  }

  TEST_CASE("nested catch blocks in two greenlets each keep their own exceptions") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet g([&](void*) -> void* {
      try {
        throw std::runtime_error("g outer");
      } catch (...) {
        try {
          throw std::runtime_error("g inner");
        } catch (...) {
          main->switch_to();
          log += "[" + what_of(std::current_exception()) + "]";
        }
        main->switch_to();
        log += "[" + what_of(std::current_exception()) + "]";
      }
      log += "[" + what_of(std::current_exception()) + "]";
      return nullptr;
    });
    try {
      throw std::runtime_error("m outer");
    } catch (...) {
      try {
        throw std::runtime_error("m inner");
      } catch (...) {
        g.switch_to();
        log += "[" + what_of(std::current_exception()) + "]";
        g.switch_to();  // g leaves its inner handler and suspends in its outer one
        log += "[" + what_of(std::current_exception()) + "]";
      }
      log += "[" + what_of(std::current_exception()) + "]";
      g.switch_to();  // g leaves its outer handler and finishes
      log += "[" + what_of(std::current_exception()) + "]";
    }
    log += "[" + what_of(std::current_exception()) + "]";
    CHECK(log == "[m inner][g inner][m inner][m outer][g outer][][m outer][]");
    CHECK(g.dead());
  }

  TEST_CASE("a greenlet started while its creator handles an exception sees none") {
    std::exception_ptr seen = std::make_exception_ptr(0);
    int uncaught_seen = -1;
    gr::greenlet g([&](void*) -> void* {
      seen = std::current_exception();
      uncaught_seen = std::uncaught_exceptions();
      return nullptr;
    });
    try {
      throw std::runtime_error("creator's");
    } catch (...) {
      g.switch_to();
    }
    CHECK(seen == nullptr);
    CHECK(uncaught_seen == 0);
  }

  TEST_CASE("uncaught_exceptions counts only the running greenlet's unwinding") {
    gr::greenlet* main = gr::greenlet::current();
    int g_at_start = -1;
    int g_in_dtor_before = -1;
    int g_in_dtor_after = -1;
    int g_after_catch = -1;
    struct on_unwind {
      gr::greenlet* to;
      int* before;
      int* after;
      ~on_unwind() {
        *before = std::uncaught_exceptions();
        to->switch_to();
        *after = std::uncaught_exceptions();
      }
    };
    gr::greenlet g([&](void*) -> void* {
      g_at_start = std::uncaught_exceptions();
      try {
        on_unwind u{main, &g_in_dtor_before, &g_in_dtor_after};
        throw 2;
      } catch (int) {
      }
      g_after_catch = std::uncaught_exceptions();
      return nullptr;
    });
    int m_before = -1;
    int m_after = -1;
    try {
      on_unwind u{&g, &m_before, &m_after};  // main unwinds into g, which unwinds back into main
      throw 1;
    } catch (int) {
    }
    CHECK(m_before == 1);
    CHECK(g_at_start == 0);
    CHECK(g_in_dtor_before == 1);
    CHECK(m_after == 1);
    CHECK(std::uncaught_exceptions() == 0);
    g.switch_to();  // g finishes its unwinding
    CHECK(g_in_dtor_after == 1);
    CHECK(g_after_catch == 0);
    CHECK(g.dead());
    CHECK(std::uncaught_exceptions() == 0);
  }

  TEST_CASE("an exception rethrown by the resumer is the very object thrown in the greenlet") {
    std::exception_ptr thrown;
    gr::greenlet g([&](void*) -> void* {
      try {
        throw std::runtime_error("identity");
      } catch (...) {
        thrown = std::current_exception();
        throw;
      }
    });
    std::exception_ptr caught;
    try {
      g.switch_to();
    } catch (...) {
      caught = std::current_exception();
    }
    CHECK(caught == thrown);
    CHECK(what_of(caught) == "identity");
  }
}
