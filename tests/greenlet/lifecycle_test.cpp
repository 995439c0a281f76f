#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using gr_test::arg;
using gr_test::num;
using gr_test::text;
using gr_test::value;

namespace {

struct set_on_destroy {
  bool& flag;
  ~set_on_destroy() { flag = true; }
};

}  // namespace

TEST_SUITE("greenlet.lifecycle") {
  TEST_CASE("started dead and active follow a greenlet from creation to death") {
    gr::greenlet* main = gr::greenlet::current();
    bool started_inside = false;
    bool active_inside = false;
    bool dead_inside = true;
    gr::greenlet g([&](void*) -> void* {
      gr::greenlet* self = gr::greenlet::current();
      started_inside = self->started();
      active_inside = self->active();
      dead_inside = self->dead();
      main->switch_to();
      return nullptr;
    });
    CHECK_FALSE(g.started());
    CHECK_FALSE(g.active());
    CHECK_FALSE(g.dead());
    g.switch_to();
    CHECK(started_inside);
    CHECK(active_inside);
    CHECK_FALSE(dead_inside);
    CHECK(g.started());  // suspended
    CHECK(g.active());
    CHECK_FALSE(g.dead());
    g.switch_to();
    CHECK(g.started());  // stays true after death
    CHECK_FALSE(g.active());
    CHECK(g.dead());
  }

  TEST_CASE("destroying an unstarted greenlet never runs it") {
    bool ran = false;
    {
      gr::greenlet g([&](void*) -> void* {
        ran = true;
        return nullptr;
      });
    }
    CHECK_FALSE(ran);
  }

  TEST_CASE("destroying a suspended greenlet raises greenlet_exit in it so its destructors run") {
    gr::greenlet* main = gr::greenlet::current();
    bool unwound = false;
    bool saw_exit = false;
    bool std_exception_caught_it = false;
    bool ran_past_switch = false;
    {
      gr::greenlet g([&](void*) -> void* {
        set_on_destroy s{unwound};
        try {
          try {
            main->switch_to();
            ran_past_switch = true;
          } catch (const std::exception&) {
            std_exception_caught_it = true;
          }
        } catch (const gr::greenlet_exit&) {
          saw_exit = true;
          throw;
        }
        return nullptr;
      });
      g.switch_to();
    }
    CHECK(unwound);
    CHECK(saw_exit);
    CHECK_FALSE(std_exception_caught_it);
    CHECK_FALSE(ran_past_switch);
    CHECK(gr::greenlet::current() == main);
  }

  TEST_CASE("destroying a suspended greenlet returns to the destroyer and never starts its old parent") {
    gr::greenlet* main = gr::greenlet::current();
    bool parent_ran = false;
    gr::greenlet parent([&](void*) -> void* {
      parent_ran = true;
      return nullptr;
    });
    gr::greenlet* parent_while_unwinding = nullptr;
    struct note_parent {
      gr::greenlet*& out;
      ~note_parent() { out = gr::greenlet::current()->parent(); }
    };
    {
      gr::greenlet g([&](void*) -> void* {
        note_parent n{parent_while_unwinding};
        main->switch_to();
        return nullptr;
      }, &parent);
      g.switch_to();
    }
    CHECK(parent_while_unwinding == main);
    CHECK_FALSE(parent_ran);
    CHECK_FALSE(parent.started());
    CHECK(gr::greenlet::current() == main);
  }

  TEST_CASE("destroying a suspended greenlet never resumes its suspended old parent") {
    gr::greenlet* main = gr::greenlet::current();
    int parent_resumed = 0;
    gr::greenlet parent([&](void*) -> void* {
      for (;;) {
        main->switch_to();
        ++parent_resumed;
      }
    });
    parent.switch_to();
    {
      gr::greenlet g([&](void*) -> void* {
        main->switch_to();
        return nullptr;
      }, &parent);
      g.switch_to();
    }
    CHECK(parent_resumed == 0);
    CHECK(parent.active());
  }

  TEST_CASE("a greenlet destroyed by another greenlet returns control to that greenlet") {
    gr::greenlet* main = gr::greenlet::current();
    bool victim_unwound = false;
    gr::greenlet* back_in = nullptr;
    gr::greenlet destroyer([&](void*) -> void* {
      {
        gr::greenlet victim([&](void*) -> void* {
          set_on_destroy s{victim_unwound};
          main->switch_to();  // not back to the destroyer: its parent is the root
          return nullptr;
        });
        victim.switch_to();
      }
      back_in = gr::greenlet::current();
      return nullptr;
    });
    // destroyer starts the victim, which switches to main; main resumes the destroyer, which then
    // destroys the suspended victim and must get control back.
    destroyer.switch_to();
    destroyer.switch_to();
    CHECK(victim_unwound);
    CHECK(back_in == &destroyer);
    CHECK(destroyer.dead());
  }

  TEST_CASE("kill unwinds a suspended greenlet and restores its old parent") {
    gr::greenlet* main = gr::greenlet::current();
    bool unwound = false;
    gr::greenlet parent([](void*) -> void* { return nullptr; });
    gr::greenlet g([&](void*) -> void* {
      set_on_destroy s{unwound};
      main->switch_to();
      return nullptr;
    }, &parent);
    g.switch_to();
    CHECK_NOTHROW(g.kill());
    CHECK(unwound);
    CHECK(g.dead());
    CHECK(g.parent() == &parent);
    CHECK_FALSE(parent.started());
    CHECK(gr::greenlet::current() == main);
  }

  TEST_CASE("kill leaves an unstarted or dead greenlet alone") {
    gr::greenlet fresh([](void*) -> void* { return nullptr; });
    fresh.kill();
    CHECK_FALSE(fresh.started());
    gr::greenlet done([](void*) -> void* { return nullptr; });
    done.switch_to();
    done.kill();
    CHECK(done.dead());
  }

  TEST_CASE("kill of the running greenlet or a root is a gr::error") {
    gr::greenlet g([](void*) -> void* {
      CHECK_THROWS_AS(gr::greenlet::current()->kill(), gr::error);
      CHECK_THROWS_WITH(gr::greenlet::current()->kill(), doctest::Contains("is running"));
      return arg("still alive");
    });
    CHECK(text(g.switch_to()) == std::string("still alive"));
    CHECK_THROWS_AS(gr::greenlet::root()->kill(), gr::error);
  }

  TEST_CASE("a greenlet that catches greenlet_exit and returns dies normally") {
    gr::greenlet* main = gr::greenlet::current();
    bool caught = false;
    gr::greenlet g([&](void*) -> void* {
      try {
        main->switch_to();
      } catch (const gr::greenlet_exit&) {
        caught = true;
      }
      return arg("returned instead");
    });
    g.switch_to();
    CHECK_NOTHROW(g.kill());
    CHECK(caught);
    CHECK(g.dead());
  }

  TEST_CASE("kill reports a greenlet that swallows greenlet_exit and switches away") {
    gr::greenlet* main = gr::greenlet::current();
    int exits = 0;
    gr::greenlet g([&](void*) -> void* {
      for (;;) {
        try {
          main->switch_to();
        } catch (const gr::greenlet_exit&) {
          if (++exits == 2) throw;  // the second time it gives in
        }
      }
    });
    g.set_name("stubborn");
    g.switch_to();
    CHECK_THROWS_AS(g.kill(), gr::error);
    CHECK(g.active());
    CHECK(exits == 1);
    CHECK(g.parent() == gr::greenlet::root());
    CHECK_NOTHROW(g.kill());
    CHECK(g.dead());
    CHECK(exits == 2);
  }

  TEST_CASE("an exception raised while a greenlet is killed reaches the killer") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet g([&](void*) -> void* {
      try {
        main->switch_to();
      } catch (const gr::greenlet_exit&) {
        throw std::runtime_error("instead of exiting");
      }
      return nullptr;
    });
    g.switch_to();
    CHECK_THROWS_WITH_AS(g.kill(), "instead of exiting", std::runtime_error);
    CHECK(g.dead());
  }

  TEST_CASE("reset unwinds a suspended greenlet and the next switch calls its function afresh") {
    gr::greenlet* main = gr::greenlet::current();
    int calls = 0;
    int unwound = 0;
    struct count_on_destroy {
      int& n;
      ~count_on_destroy() { ++n; }
    };
    gr::greenlet g([&](void* a) -> void* {
      ++calls;
      count_on_destroy c{unwound};
      main->switch_to(a);
      return arg("finished");
    });
    const void* base = g.stack_region().base;
    CHECK(text(g.switch_to(arg("one"))) == std::string("one"));
    g.reset();
    CHECK(unwound == 1);
    CHECK_FALSE(g.started());
    CHECK_FALSE(g.dead());
    CHECK(g.stack_region().base == base);
    CHECK(text(g.switch_to(arg("two"))) == std::string("two"));  // fn runs again from the top
    CHECK(calls == 2);
    CHECK(text(g.switch_to()) == std::string("finished"));
    CHECK(g.dead());
    g.reset();  // a dead greenlet can be reset too
    CHECK_FALSE(g.started());
    CHECK(g.stack_region().base == base);
    CHECK(text(g.switch_to(arg("three"))) == std::string("three"));
    CHECK(calls == 3);
    CHECK(unwound == 2);
  }

  TEST_CASE("reset of an unstarted greenlet does nothing") {
    bool ran = false;
    gr::greenlet g([&](void*) -> void* {
      ran = true;
      return nullptr;
    });
    g.reset();
    CHECK_FALSE(g.started());
    CHECK_FALSE(ran);
    g.switch_to();
    CHECK(ran);
  }

  TEST_CASE("reset's errors name reset and not kill") {
    gr::greenlet g([](void*) -> void* {
      CHECK_THROWS_WITH(gr::greenlet::current()->reset(),
                        doctest::Contains("gr::greenlet::reset: greenlet 'self' is running and cannot kill, reset"));
      return nullptr;
    });
    g.set_name("self");
    g.switch_to();
    CHECK(g.dead());
  }

  TEST_CASE("stacks of finished greenlets are unmapped and mapped again cleanly") {
    // Under ASan this fails if a finished greenlet's first frames, which never return, leave their
    // redzones poisoned on memory the kernel hands out again: each round's stacks, of another
    // size, are mapped where the last round's were, and a new greenlet's first frames (ASan's own,
    // uninstrumented, among them) land on the stale poison.
    gr::greenlet* main = gr::greenlet::current();
    for (std::size_t size : {32 * 1024, 256 * 1024, 20 * 1024, 64 * 1024, 32 * 1024, 256 * 1024}) {
      std::vector<std::unique_ptr<gr::greenlet>> gs;
      for (int i = 0; i < 16; ++i) {
        gs.push_back(std::make_unique<gr::greenlet>([main](void* a) -> void* { return main->switch_to(a); },
                                                    nullptr, size));
        gs.back()->switch_to();
      }
      for (auto& g : gs) g->switch_to();  // each returns: dead, its first frames never unwound
      gs.clear();
      gr::trim_stack_pool();  // every stack unmapped
    }
    CHECK(gr::greenlet::live_count() == 0);
  }

  TEST_CASE("thousands of greenlets are created switched and destroyed") {
#if defined(__SANITIZE_THREAD__)
    constexpr int n = 4'000;  // TSan allows about 8,000 threads and fibers at once in all
#else
    constexpr int n = 10'000;
#endif
    gr::greenlet* main = gr::greenlet::current();
    std::vector<std::unique_ptr<gr::greenlet>> gs;
    gs.reserve(n);
    long long sum = 0;
    for (int i = 0; i < n; ++i) {
      gs.push_back(std::make_unique<gr::greenlet>([&sum, main](void* a) -> void* {
        sum += value(a);
        void* b = main->switch_to(a);
        sum += value(b);
        return b;
      }, nullptr, 32 * 1024));
    }
    CHECK(gr::greenlet::live_count() == n);
    bool all_echoed = true;
    for (int i = 0; i < n; ++i) all_echoed = all_echoed && value(gs[i]->switch_to(num(i))) == i;
    CHECK(all_echoed);
    // Finish the even ones; the odd ones stay suspended and are unwound by their destruction.
    for (int i = 0; i < n; i += 2) all_echoed = all_echoed && value(gs[i]->switch_to(num(1))) == 1;
    CHECK(all_echoed);
    CHECK(sum == static_cast<long long>(n) * (n - 1) / 2 + n / 2);
    gs.clear();
    CHECK(gr::greenlet::live_count() == 0);
    gr::trim_stack_pool();
  }
}
