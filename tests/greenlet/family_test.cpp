// What happens to a greenlet's children, its parent chain and its thread when it is destroyed.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "child_process.hpp"
#include "sanitizer_flags.hpp"
#include "test_util.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>

using gr_test::arg;
using gr_test::num;
using gr_test::text;
using gr_test::value;

namespace {

void* finish_at_once(void*) { return nullptr; }
void* identity(void* a) { return a; }

// waiter: a greenlet that switches to the root at once, then returns "<name> done" once resumed,
// keeping what it was resumed with in `got`.
struct waiter {
  explicit waiter(const char* name)
      : g([this](void*) -> void* {
          got = gr::greenlet::root()->switch_to();
          return arg(done.c_str());
        }),
        done(std::string(name) + " done") {
    g.set_name(name);
    g.switch_to();
  }
  gr::greenlet g;
  std::string done;
  void* got = nullptr;
};

}  // namespace

TEST_SUITE("greenlet.family") {
  TEST_CASE("a suspended child of a destroyed parent finishes into the parent's parent") {
    gr::greenlet* main = gr::greenlet::current();
    waiter q("q");
    auto p = std::make_unique<gr::greenlet>([main](void* a) -> void* { return main->switch_to(a); }, &q.g);
    gr::greenlet c([main](void*) -> void* {
      main->switch_to(arg("c waits"));
      return arg("c's result");
    }, p.get());
    SUBCASE("the parent is unstarted") {}
    SUBCASE("the parent is suspended") { p->switch_to(); }
    SUBCASE("the parent is dead") {
      p->switch_to();
      p->switch_to();  // p returns into q, which returns into main
      REQUIRE(p->dead());
      REQUIRE(q.g.dead());
      q.g.reset();
      q.g.switch_to();  // q waits again
    }
    CHECK(text(c.switch_to()) == std::string("c waits"));
    p.reset();
    CHECK(c.parent() == &q.g);
    CHECK(text(c.switch_to()) == std::string("q done"));  // c -> q -> main
    CHECK(text(q.got) == std::string("c's result"));
    CHECK(c.dead());
    CHECK(gr::greenlet::current() == main);
  }

  TEST_CASE("an unstarted child of a destroyed parent starts and finishes into the parent's parent") {
    waiter q("q");
    auto p = std::make_unique<gr::greenlet>(&finish_at_once, &q.g);
    gr::greenlet c([](void* a) -> void* { return num(value(a) * 2); }, p.get());
    p.reset();
    CHECK(c.parent() == &q.g);
    CHECK(text(c.switch_to(num(21))) == std::string("q done"));
    CHECK(value(q.got) == 42);
  }

  TEST_CASE("destroying a chain of dead parents keeps the nearest live ancestor reachable") {
    waiter q("q");
    auto a = std::make_unique<gr::greenlet>(&finish_at_once, &q.g);
    auto b = std::make_unique<gr::greenlet>(&finish_at_once, a.get());
    auto c = std::make_unique<gr::greenlet>(&finish_at_once, b.get());
    gr::greenlet d(&identity, c.get());
    for (gr::greenlet* g : {a.get(), b.get(), c.get()}) {
      g->set_parent(gr::greenlet::root());  // finish it without waking q
      g->switch_to();
      REQUIRE(g->dead());
    }
    a->set_parent(&q.g);
    b->set_parent(a.get());
    c->set_parent(b.get());
    b.reset();  // the middle first: c now hangs from a
    CHECK(c->parent() == a.get());
    a.reset();
    CHECK(c->parent() == &q.g);
    CHECK(d.parent() == c.get());
    c.reset();
    CHECK(d.parent() == &q.g);
    CHECK(text(d.switch_to(arg("d's result"))) == std::string("q done"));
    CHECK(text(q.got) == std::string("d's result"));
  }

  TEST_CASE("a switch to a dead greenlet whose dead parent was destroyed goes to the nearest live ancestor") {
    waiter q("q");
    auto a = std::make_unique<gr::greenlet>(&finish_at_once);
    gr::greenlet b(&finish_at_once, a.get());
    a->switch_to();
    b.switch_to();
    REQUIRE(b.dead());
    a->set_parent(&q.g);
    a.reset();
    CHECK(b.parent() == &q.g);
    CHECK(text(b.switch_to(arg("via b"))) == std::string("q done"));
    CHECK(text(q.got) == std::string("via b"));
  }

  TEST_CASE("every child of a destroyed greenlet passes to its parent in whatever state") {
    gr::greenlet* main = gr::greenlet::current();
    waiter q("q");
    auto p = std::make_unique<gr::greenlet>(&finish_at_once, &q.g);
    std::vector<std::unique_ptr<gr::greenlet>> kids;
    for (int i = 0; i < 6; ++i)
      kids.push_back(std::make_unique<gr::greenlet>([main](void* a) -> void* { return main->switch_to(a); }, p.get()));
    kids[1]->switch_to();  // suspended
    kids[2]->switch_to();
    kids[2]->set_parent(main);
    kids[2]->switch_to();  // dead
    kids[2]->set_parent(p.get());
    kids[4]->switch_to();  // suspended
    kids[5].reset();       // gone before the parent
    kids[0].reset();
    const std::size_t live = gr::greenlet::live_count();
    p.reset();
    CHECK(gr::greenlet::live_count() == live - 1);
    for (int i = 1; i < 5; ++i) CHECK(kids[i]->parent() == &q.g);
    kids[3].reset();  // the list they now share with q's other children stays well formed
    kids[2].reset();
    CHECK(kids[1]->parent() == &q.g);
    CHECK(kids[4]->parent() == &q.g);
    kids[4]->set_parent(main);
    CHECK(text(kids[4]->switch_to(arg("four"))) == std::string("four"));
    CHECK(text(kids[1]->switch_to(arg("one"))) == std::string("q done"));
    CHECK(text(q.got) == std::string("one"));
  }

  TEST_CASE("set_parent moves a greenlet from its old parent's children to the new one's") {
    auto old_parent = std::make_unique<gr::greenlet>(&finish_at_once);
    auto new_parent = std::make_unique<gr::greenlet>(&finish_at_once);
    gr::greenlet c(&finish_at_once, old_parent.get());
    c.set_parent(new_parent.get());
    old_parent.reset();
    CHECK(c.parent() == new_parent.get());
    new_parent.reset();
    CHECK(c.parent() == gr::greenlet::root());
  }

  TEST_CASE("a running greenlet may destroy its unstarted or dead parent and then finishes into the grandparent") {
    waiter q("q");
    auto p = std::make_unique<gr::greenlet>(&finish_at_once, &q.g);
    bool p_dead = false;
    SUBCASE("unstarted") {}
    SUBCASE("dead") {
      p->set_parent(gr::greenlet::root());
      p->switch_to();
      p->set_parent(&q.g);
      p_dead = true;
    }
    CHECK(p->dead() == p_dead);
    gr::greenlet c([&](void*) -> void* {
      p.reset();
      return arg("c's result");
    }, p.get());
    CHECK(text(c.switch_to()) == std::string("q done"));
    CHECK(text(q.got) == std::string("c's result"));
  }

  TEST_CASE("a greenlet whose old parent is destroyed while it is killed gets the old parent's parent") {
    gr::greenlet* main = gr::greenlet::current();
    waiter q("q");
    auto p = std::make_unique<gr::greenlet>(&finish_at_once, &q.g);
    struct destroy_on_unwind {
      std::unique_ptr<gr::greenlet>& victim;
      ~destroy_on_unwind() { victim.reset(); }
    };
    gr::greenlet v([&](void*) -> void* {
      destroy_on_unwind d{p};
      main->switch_to();
      return nullptr;
    }, p.get());
    v.switch_to();
    SUBCASE("by kill") { CHECK_NOTHROW(v.kill()); }
    SUBCASE("by reset") { CHECK_NOTHROW(v.reset()); }
    CHECK(p == nullptr);
    CHECK(v.parent() == &q.g);
    CHECK(gr::greenlet::current() == main);
    CHECK_FALSE(q.g.dead());
  }

  TEST_CASE("kill of a greenlet in the running greenlet's parent chain is a gr::error") {
    gr::greenlet* main = gr::greenlet::current();
    gr::greenlet elder([main](void*) -> void* { return main->switch_to(); });
    elder.set_name("elder");
    elder.switch_to();
    gr::greenlet middle(&identity, &elder);
    gr::greenlet c([&](void*) -> void* {
      CHECK_THROWS_AS(elder.kill(), gr::error);
      CHECK_THROWS_WITH(elder.kill(), doctest::Contains("greenlet 'elder' is in the parent chain of the running"));
      CHECK_THROWS_AS(elder.reset(), gr::error);
      CHECK(elder.active());
      return arg("c's result");
    }, &middle);
    CHECK(text(c.switch_to()) == std::string("c's result"));  // c -> middle (unstarted) -> elder -> main
    CHECK(middle.dead());
    CHECK(elder.dead());
  }

#if !GR_TEST_TSAN  // TSan's own pthread_exit fails a CHECK on a fiber's stack before gr sees anything
  TEST_CASE("pthread_exit inside a greenlet ends the process naming the greenlet") {
    // glibc's forced unwinding was swallowed by the greenlet's catch-all: a bare "FATAL:
    // exception not rethrown".
    gr_test::child_result r = gr_test::run_in_child([] {
      std::thread([] {
        gr::greenlet g([](void*) -> void* { ::pthread_exit(nullptr); });
        g.set_name("quitter");
        g.switch_to();
      }).join();
      ::_exit(5);
    });
    CHECK(r.died());
    CHECK_FALSE(r.exited_with(5));
    CHECK(r.says("gr: greenlet 'quitter' called pthread_exit"));
  }
#endif

  TEST_CASE("a greenlet killed while suspended in a destructor that unwinds names itself in the terminate") {
    // Its destructor switched away while an exception unwound the greenlet; the kill raises
    // gr::greenlet_exit at that switch, which escapes the noexcept destructor: std::terminate,
    // whose own message named only the type.
    gr_test::child_result r = gr_test::run_in_child([] {
      gr::greenlet* main = gr::greenlet::current();
      auto* g = new gr::greenlet([main](void*) -> void* {
        struct switches_away {
          gr::greenlet* to;
          ~switches_away() { to->switch_to(); }
        };
        switches_away guard{main};
        throw std::runtime_error("unwinding");
      });
      g->set_name("in-dtor");
      g->switch_to();  // back from the guard's destructor, mid-unwinding
      delete g;
      ::_exit(5);
    });
    CHECK(r.died());
    CHECK(r.says("gr: gr::greenlet_exit escaped a destructor or a noexcept function in greenlet 'in-dtor'"));
    CHECK(r.says("catch gr::greenlet_exit around the switch"));
  }

  TEST_CASE("destroying a suspended greenlet in the running greenlet's parent chain aborts naming it") {
    gr_test::child_result r = gr_test::run_in_child([] {
      gr::greenlet* main = gr::greenlet::current();
      auto* elder = new gr::greenlet([main](void*) -> void* { return main->switch_to(); });
      elder->set_name("elder");
      elder->switch_to();
      gr::greenlet c([elder](void*) -> void* {
        delete elder;
        return nullptr;
      }, elder);
      c.switch_to();
      ::_exit(5);  // the destruction went through
    });
    CHECK(r.died());
    CHECK_FALSE(r.exited_with(5));
    CHECK(r.says("destroying greenlet 'elder'"));
    CHECK(r.says("is in the parent chain of the running"));
  }

  TEST_CASE("destroying a greenlet on another thread aborts naming it") {
    bool start = false;
    SUBCASE("unstarted") {}
    SUBCASE("dead") { start = true; }
    gr_test::child_result r = gr_test::run_in_child([start] {
      auto* g = new gr::greenlet(&finish_at_once);
      g->set_name("wanderer");
      if (start) g->switch_to();
      std::thread([g] { delete g; }).join();
      ::_exit(5);  // destroyed there, and this thread's live count is now wrong
    });
    CHECK(r.died());
    CHECK_FALSE(r.exited_with(5));
    CHECK(r.says("greenlet 'wanderer' was destroyed on another thread"));
  }

  TEST_CASE("greenlets made and destroyed on another thread leave this thread's count exact") {
    const std::size_t before = gr::greenlet::live_count();
    std::size_t there = 0;
    std::size_t after_there = 1;
    {
      gr::greenlet here(&finish_at_once);
      std::thread([&] {
        auto p = std::make_unique<gr::greenlet>(&finish_at_once);
        gr::greenlet c(&finish_at_once, p.get());
        there = gr::greenlet::live_count();
        p.reset();
        c.switch_to();
        after_there = gr::greenlet::live_count();
      }).join();
      CHECK(gr::greenlet::live_count() == before + 1);
    }
    CHECK(there == 2);
    CHECK(after_there == 1);
    CHECK(gr::greenlet::live_count() == before);
  }
}
