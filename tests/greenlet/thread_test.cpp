#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include "test_util.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

using gr_test::num;
using gr_test::value;

namespace {

// foreign: a greenlet named "foreign" that lives on another thread, started and suspended there,
// until the foreign object is destroyed (then that thread destroys it, unwinding it).
class foreign {
public:
  foreign() {
    thread_ = std::thread([this] {
      gr::greenlet* root = gr::greenlet::root();
      gr::greenlet g([root](void*) -> void* {
        root->switch_to();
        return nullptr;
      });
      g.set_name("foreign");
      g.switch_to();
      ready_.set_value(&g);
      done_.get_future().wait();
    });
    g_ = ready_.get_future().get();
  }
  ~foreign() {
    done_.set_value();
    thread_.join();
  }
  gr::greenlet& get() { return *g_; }

private:
  std::promise<gr::greenlet*> ready_;
  std::promise<void> done_;
  std::thread thread_;
  gr::greenlet* g_ = nullptr;
};

}  // namespace

TEST_SUITE("greenlet.thread") {
  TEST_CASE("each thread has its own root greenlet") {
    gr::greenlet* main_root = gr::greenlet::root();
    gr::greenlet* other_root = nullptr;
    bool other_current_is_root = false;
    bool other_root_is_root = false;
    std::thread([&] {
      other_root = gr::greenlet::root();
      other_current_is_root = gr::greenlet::current() == other_root;
      other_root_is_root = other_root->is_root();
    }).join();
    CHECK(other_root != nullptr);
    CHECK(other_root != main_root);
    CHECK(other_current_is_root);
    CHECK(other_root_is_root);
    CHECK(gr::greenlet::root() == main_root);
  }

  TEST_CASE("greenlets on two threads switch independently") {
    auto work = [](std::intptr_t start) {
      gr::greenlet* root = gr::greenlet::root();
      gr::greenlet g([root](void* a) -> void* {
        for (;;) a = root->switch_to(num(value(a) + 1));
      });
      std::intptr_t n = start;
      for (int i = 0; i < 10'000; ++i) n = value(g.switch_to(num(n)));
      return n;
    };
    std::intptr_t a = 0;
    std::intptr_t b = 0;
    std::thread t1([&] { a = work(0); });
    std::thread t2([&] { b = work(1'000'000); });
    t1.join();
    t2.join();
    CHECK(a == 10'000);
    CHECK(b == 1'010'000);
  }

  TEST_CASE("switching to a greenlet of another thread is a gr::error") {
    foreign f;
    CHECK_THROWS_AS(f.get().switch_to(), gr::error);
    CHECK_THROWS_WITH(f.get().switch_to(), doctest::Contains("greenlet 'foreign' belongs to another thread"));
    CHECK(gr::greenlet::current() == gr::greenlet::root());
  }

  TEST_CASE("throw_in inject and kill on a greenlet of another thread are gr::errors") {
    foreign f;
    CHECK_THROWS_AS(f.get().throw_in(std::make_exception_ptr(std::runtime_error("x"))), gr::error);
    CHECK_THROWS_AS(f.get().inject([](void*) {}), gr::error);
    CHECK_THROWS_AS(f.get().kill(), gr::error);
    CHECK_THROWS_AS(f.get().reset(), gr::error);
    CHECK(f.get().active());
  }

  TEST_CASE("a parent of another thread is a gr::error") {
    foreign f;
    CHECK_THROWS_AS(gr::greenlet([](void*) -> void* { return nullptr; }, &f.get()), gr::error);
    CHECK_THROWS_WITH(gr::greenlet([](void*) -> void* { return nullptr; }, &f.get()),
                      doctest::Contains("greenlet 'foreign' belongs to another thread"));
    gr::greenlet g([](void*) -> void* { return nullptr; });
    CHECK_THROWS_AS(g.set_parent(&f.get()), gr::error);
    CHECK_THROWS_WITH(g.set_parent(&f.get()), doctest::Contains("different threads"));
    CHECK(g.parent() == gr::greenlet::root());
    CHECK_THROWS_AS(g.set_parent(f.get().parent()), gr::error);  // the other thread's root
  }

  TEST_CASE("a thread that ends with greenlets suspended and dead cleans up") {
    std::atomic<bool> ok{false};
    std::thread([&] {
      gr::greenlet* root = gr::greenlet::root();
      bool unwound = false;
      struct flag_on_destroy {
        bool& f;
        ~flag_on_destroy() { f = true; }
      };
      {
        gr::greenlet suspended([&](void*) -> void* {
          flag_on_destroy d{unwound};
          root->switch_to();
          return nullptr;
        });
        gr::greenlet finished([](void*) -> void* { return nullptr; });
        suspended.switch_to();
        finished.switch_to();
      }
      ok = unwound && gr::greenlet::live_count() == 0 && gr::stack_statistics().live == 0;
    }).join();
    CHECK(ok);
  }

  TEST_CASE("a thread_local greenlet destroyed after its thread's greenlet state is unwound and frees it") {
    // The state is left at thread exit while greenlets of the thread remain; the last of them to
    // go frees it (it leaked, about 400 bytes a thread: LeakSanitizer in the ASan build says so).
    static std::atomic<bool> unwound{false};
    unwound = false;
    std::thread([] {
      struct holder {
        std::unique_ptr<gr::greenlet> g;
      };
      // Made before the thread's first greenlet (its state), so destroyed after that state's
      // owner: the greenlet outlives it, suspended.
      thread_local holder h;
      h.g = std::make_unique<gr::greenlet>([](void*) -> void* {
        struct flag_on_destroy {
          ~flag_on_destroy() { unwound = true; }
        } d;
        gr::greenlet::root()->switch_to();
        return nullptr;
      });
      h.g->switch_to();
    }).join();
    CHECK(unwound);
  }
}
