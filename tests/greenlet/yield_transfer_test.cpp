// greenlet::yield_transfer: a switch whose suspended side, once resumed, returns straight into
// the caller of the function that tail-called it (in optimised, unsanitized builds; elsewhere it is
// transfer()). Whatever reaches such a greenlet (a value, an injection, an exception of a dying
// child, a kill) must behave exactly as if it had suspended in an ordinary switch: these tests run
// the same in every build, and the release preset is the one that takes the direct path.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include <stdexcept>
#include <string>

namespace {

// park: the pattern yield_transfer is for: its last act, so the compiler makes it a tail call.
[[gnu::noinline]] void park(gr::greenlet* self, gr::greenlet* to) { gr::greenlet::yield_transfer(self, to); }

struct guard {
  bool* ran;
  ~guard() { *ran = true; }
};

}  // namespace

TEST_SUITE("greenlet.yield_transfer") {
  TEST_CASE("a parked greenlet resumes after its park call with its locals intact") {
    gr::greenlet* root = gr::greenlet::current();
    int rounds = 0;
    std::string trail;
    gr::greenlet g([&](void*) -> void* {
      gr::greenlet* self = gr::greenlet::current();
      for (int i = 0; i < 3; ++i) {
        std::string mark = std::to_string(i);  // lives across the switch
        mark.insert(0, 1, 'r');
        park(self, root);
        trail += mark;
        ++rounds;
      }
      return nullptr;
    });
    g.switch_to();
    CHECK(gr::greenlet::current() == root);
    while (!g.dead()) g.switch_to();
    CHECK(rounds == 3);
    CHECK(trail == "r0r1r2");
  }

  TEST_CASE("many parks in a row keep the stack balanced") {
    gr::greenlet* root = gr::greenlet::current();
    long count = 0;
    gr::greenlet g([&](void*) -> void* {
      gr::greenlet* self = gr::greenlet::current();
      for (int i = 0; i < 100000; ++i) {
        park(self, root);
        ++count;
      }
      return nullptr;
    });
    while (!g.dead()) g.switch_to();
    CHECK(count == 100000);
  }

  TEST_CASE("an injection into a parked greenlet runs first; what it throws comes out of the park call") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    gr::greenlet g([&](void*) -> void* {
      gr::greenlet* self = gr::greenlet::current();
      park(self, root);
      seen += "resumed;";
      try {
        park(self, root);
        seen += "not thrown;";
      } catch (const std::runtime_error& e) {
        seen += std::string("caught ") + e.what() + ";";
      }
      return nullptr;
    });
    g.switch_to();
    g.inject([&](void*) { seen += "injected;"; });
    g.switch_to();
    g.inject([](void*) { throw std::runtime_error("boom"); });
    g.switch_to();
    CHECK(g.dead());
    CHECK(seen == "injected;resumed;caught boom;");
  }

  TEST_CASE("a child that dies by an exception raises it in its parked parent") {
    gr::greenlet* root = gr::greenlet::current();
    gr::greenlet* parent_g = nullptr;
    std::string seen;
    gr::greenlet parent([&](void*) -> void* {
      gr::greenlet* self = gr::greenlet::current();
      try {
        park(self, root);
        seen += "no exception;";
      } catch (const std::logic_error& e) {
        seen += std::string("caught ") + e.what() + ";";
      }
      return nullptr;
    });
    parent_g = &parent;
    parent.switch_to();  // parks
    gr::greenlet child([](void*) -> void* { throw std::logic_error("from the child"); }, parent_g);
    child.switch_to();  // dies: its exception goes to the parked parent, which then finishes
    CHECK(child.dead());
    CHECK(parent.dead());
    CHECK(seen == "caught from the child;");
  }

  TEST_CASE("destroying a parked greenlet unwinds it from its park call") {
    gr::greenlet* root = gr::greenlet::current();
    bool unwound = false;
    bool after = false;
    {
      gr::greenlet g([&](void*) -> void* {
        guard gd{&unwound};
        park(gr::greenlet::current(), root);
        after = true;
        return nullptr;
      });
      g.switch_to();
      CHECK_FALSE(unwound);
    }
    CHECK(unwound);
    CHECK_FALSE(after);
  }

  TEST_CASE("an exception in flight survives a park inside its catch block") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    gr::greenlet g([&](void*) -> void* {
      try {
        throw std::runtime_error("outer");
      } catch (const std::runtime_error&) {
        park(gr::greenlet::current(), root);
        try {
          throw;  // the caught exception must still be this greenlet's
        } catch (const std::runtime_error& e) {
          seen = e.what();
        }
      }
      return nullptr;
    });
    g.switch_to();
    CHECK(std::uncaught_exceptions() == 0);
    g.switch_to();
    CHECK(g.dead());
    CHECK(seen == "outer");
  }
}
