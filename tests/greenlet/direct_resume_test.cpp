// Direct resume: greenlet::yield_transfer and switch_to suspend a greenlet so that, once resumed,
// it returns straight into the caller of the function that tail-called the switch (unsanitized
// x86_64 builds; under ASan/TSan they go through transfer()). Whatever reaches such a greenlet (a
// value, an injection, an exception of a dying child, a kill), from whichever kind of switch,
// must behave exactly as if it had suspended in an ordinary one: these tests run the same in
// every build. The dev preset takes the direct path through real calls (no tail calls at -O0),
// the release preset through tail calls; the asan preset checks the ordinary path.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

// park: the pattern yield_transfer is for: its last act, so the compiler makes it a tail call.
[[gnu::noinline]] void park(gr::greenlet* self, gr::greenlet* to) { gr::greenlet::yield_transfer(self, to); }

void* tag(int i) { return reinterpret_cast<void*>(static_cast<std::intptr_t>(i)); }
int untag(void* p) { return static_cast<int>(reinterpret_cast<std::intptr_t>(p)); }

struct guard {
  bool* ran;
  ~guard() { *ran = true; }
};

}  // namespace

TEST_SUITE("greenlet.direct_resume") {
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

  TEST_CASE("an injection into a parked greenlet runs first and what it throws comes out of the park call") {
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

  TEST_CASE("values travel both ways between greenlets that switch to each other") {
    gr::greenlet* root = gr::greenlet::current();
    gr::greenlet* other = nullptr;
    std::string trail;
    // a and b hand a counter back and forth; the root starts it and gets a's result.
    gr::greenlet a([&](void* v) -> void* {
      while (untag(v) < 10) {
        trail += std::to_string(untag(v)) + "a ";
        v = other->switch_to(tag(untag(v) + 1));
      }
      return tag(untag(v) + 100);  // dies: its parent, the root, gets this
    });
    gr::greenlet b([&](void* v) -> void* {
      for (;;) {
        trail += std::to_string(untag(v)) + "b ";
        v = a.switch_to(tag(untag(v) + 1));
      }
    });
    other = &b;
    void* r = a.switch_to(tag(0));
    CHECK(gr::greenlet::current() == root);
    CHECK(untag(r) == 110);
    CHECK(trail == "0a 1b 2a 3b 4a 5b 6a 7b 8a 9b ");
  }

  TEST_CASE("a greenlet in switch_to resumed by yield_transfer gets null and the other way round") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    gr::greenlet* g_ptr = nullptr;
    gr::greenlet h([&](void*) -> void* {
      park(gr::greenlet::current(), root);  // started by the root: parks back to it
      seen += "h resumed;";
      park(gr::greenlet::current(), g_ptr);  // resumes g's switch_to with null
      seen += "h resumed again;";
      return nullptr;  // dies: its parent, the root, resumes
    });
    gr::greenlet g([&](void*) -> void* {
      void* v = h.switch_to(tag(5));  // resumes h's first park (the 5 is dropped); h parks back here
      seen += v ? "value;" : "null;";
      h.switch_to(tag(6));  // resumes h's second park; h dies into the root
      seen += "not reached;";
      return nullptr;
    });
    g_ptr = &g;
    h.switch_to();
    g.switch_to();
    CHECK(gr::greenlet::current() == root);
    CHECK(seen == "h resumed;null;h resumed again;");
    CHECK(h.dead());
    CHECK_FALSE(g.dead());
  }

  TEST_CASE("switch_to returns the value it is resumed with after an injection too") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    gr::greenlet g([&](void* v) -> void* {
      seen += std::to_string(untag(v)) + ";";
      v = root->switch_to(tag(untag(v) + 1));
      seen += std::to_string(untag(v)) + ";";
      v = root->switch_to(tag(untag(v) + 1));  // resumed after an injection
      seen += std::to_string(untag(v)) + ";";
      return tag(untag(v) + 1);
    });
    CHECK(untag(g.switch_to(tag(1))) == 2);
    CHECK(untag(g.switch_to(tag(5))) == 6);
    g.inject([&](void* v) { seen += "injected " + std::to_string(untag(v)) + ";"; });
    CHECK(untag(g.switch_to(tag(7))) == 8);  // g returns 8 and dies: its parent, the root, gets it
    CHECK(g.dead());
    CHECK(seen == "1;5;injected 7;7;");
  }

  TEST_CASE("a child's return value reaches its parked parent") {
    gr::greenlet* root = gr::greenlet::current();
    void* got = nullptr;
    gr::greenlet parent([&](void*) -> void* {
      got = root->switch_to();
      return nullptr;
    });
    parent.switch_to();  // parks
    gr::greenlet child([](void* v) -> void* { return tag(untag(v) * 2); }, &parent);
    child.switch_to(tag(21));  // dies: the parked parent resumes with 42, then finishes
    CHECK(child.dead());
    CHECK(parent.dead());
    CHECK(untag(got) == 42);
  }

  TEST_CASE("throw_in raises in a greenlet parked by switch_to") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    gr::greenlet g([&](void*) -> void* {
      try {
        root->switch_to();
        seen += "no exception;";
      } catch (const std::runtime_error& e) {
        seen += std::string("caught ") + e.what() + ";";
      }
      return tag(3);
    });
    g.switch_to();
    CHECK(untag(g.throw_in(std::make_exception_ptr(std::runtime_error("thrown in")))) == 3);
    CHECK(seen == "caught thrown in;");
  }

  TEST_CASE("a parked parent with an injection pending gets both the injection and its dying child's exception") {
    gr::greenlet* root = gr::greenlet::current();
    std::string seen;
    for (int how = 0; how < 2; ++how) {  // parked by yield_transfer, then by switch_to
      seen.clear();
      gr::greenlet parent([&](void*) -> void* {
        try {
          if (how == 0)
            park(gr::greenlet::current(), root);
          else
            root->switch_to();
          seen += "no exception;";
        } catch (const std::logic_error& e) {
          seen += std::string("caught ") + e.what() + ";";
        }
        return nullptr;
      });
      parent.switch_to();  // parks
      parent.inject([&](void*) { seen += "injected;"; });
      gr::greenlet child([](void*) -> void* { throw std::logic_error("from the child"); }, &parent);
      child.switch_to();  // dies into the parent: the injection runs, then the exception is raised
      CHECK(parent.dead());
      CHECK(seen == "injected;caught from the child;");
    }
  }

  TEST_CASE("an injection that switches away outlives the greenlet whose switch ran it") {
    // The injection runs on a child's death, switches to the root, and the dead child is
    // destroyed before the parent comes back: the parent's switch must not read the child again
    // (ASan and valgrind report it if it does). Parked by switch_to (the direct path in optimised
    // builds) and by transfer (always the ordinary path).
    gr::greenlet* root = gr::greenlet::current();
    for (int how = 0; how < 2; ++how) {
      void* got = nullptr;
      std::string seen;
      gr::greenlet parent([&](void*) -> void* {
        if (how == 0)
          got = root->switch_to();
        else
          got = gr::greenlet::transfer(gr::greenlet::current(), root, nullptr);
        return nullptr;
      });
      parent.switch_to();  // parks
      auto child = std::make_unique<gr::greenlet>([](void*) -> void* { return tag(5); }, &parent);
      parent.inject([&](void*) { seen += "in:" + std::to_string(untag(root->switch_to())) + ";"; });
      child->switch_to();  // dies into the parent, whose injection switches back here
      CHECK(child->dead());
      child.reset();
      parent.switch_to(tag(9));  // the injection gets 9; the parent's switch returns the child's 5
      CHECK(parent.dead());
      CHECK(seen == "in:9;");
      CHECK(untag(got) == 5);
    }
  }

  TEST_CASE("an injection that switches away keeps a dying child's exception for its parent") {
    gr::greenlet* root = gr::greenlet::current();
    for (int how = 0; how < 2; ++how) {
      std::string seen;
      gr::greenlet parent([&](void*) -> void* {
        try {
          if (how == 0)
            root->switch_to();
          else
            gr::greenlet::transfer(gr::greenlet::current(), root, nullptr);
          seen += "no exception;";
        } catch (const std::logic_error& e) {
          seen += std::string("caught ") + e.what() + ";";
        }
        return nullptr;
      });
      parent.switch_to();
      auto child = std::make_unique<gr::greenlet>([](void*) -> void* { throw std::logic_error("boom"); }, &parent);
      parent.inject([&](void*) { root->switch_to(); });
      child->switch_to();
      child.reset();
      parent.switch_to();
      CHECK(parent.dead());
      CHECK(seen == "caught boom;");
    }
  }
}
