// The switch path touches one cache line of a greenlet: its first 64 bytes (see the field comment
// in greenlet.hpp; greenlet.cpp static_asserts the offsets). This test checks the claim by
// behaviour rather than by offsets: it places greenlets so that their first line ends a page and
// the rest of the object lies on the next page, makes that page unreadable, and switches between
// them by every switch verb. A read or write past the first line faults.
#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include <cstddef>
#include <new>

#include <sys/mman.h>
#include <unistd.h>

#if !GR_ASAN && !GR_TSAN
namespace {

// park: yield_transfer as the scheduler uses it, as its caller's last act.
[[gnu::noinline]] void park(gr::greenlet* self, gr::greenlet* to) { gr::greenlet::yield_transfer(self, to); }

// split_slot: two pages; an object placed at slot() has its first 64 bytes at the end of the
// first page and the rest on the second, which hide() makes unreadable and show() restores.
class split_slot {
public:
  split_slot() {
    page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    mem_ = ::mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(mem_ != MAP_FAILED);
  }
  ~split_slot() { ::munmap(mem_, 2 * page_); }
  split_slot(const split_slot&) = delete;
  split_slot& operator=(const split_slot&) = delete;

  void* slot() const { return static_cast<char*>(mem_) + page_ - 64; }
  void hide() const { CHECK(::mprotect(static_cast<char*>(mem_) + page_, page_, PROT_NONE) == 0); }
  void show() const { CHECK(::mprotect(static_cast<char*>(mem_) + page_, page_, PROT_READ | PROT_WRITE) == 0); }

private:
  std::size_t page_ = 0;
  void* mem_ = nullptr;
};

}  // namespace
#endif

TEST_SUITE("greenlet.layout") {
  TEST_CASE("switches between greenlets on guarded stacks touch only their first cache line") {
#if GR_ASAN || GR_TSAN
    MESSAGE("skipped: under a sanitizer a switch also updates each greenlet's sanitizer state");
#else
    static_assert(sizeof(gr::greenlet) <= 4096 - 64, "the rest of a greenlet must fit on one page");
    gr::trim_stack_pool();  // fresh stacks: guarded while the budget lasts, and it is far off
    gr::greenlet* main = gr::greenlet::current();
    split_slot slot_a, slot_b;
    gr::greenlet* a = nullptr;
    gr::greenlet* b = nullptr;
    int laps = 0;
    // a and b visit each other and main by switch_to, yield_transfer and transfer, so each verb
    // runs both with a target suspended inside its switch and with one that resumes directly.
    // The bodies copy what they capture into locals first: the closures live in the greenlets'
    // std::function, on the hidden page.
    a = ::new (slot_a.slot()) gr::greenlet([&](void*) -> void* {
      gr::greenlet* self = a;
      gr::greenlet* other = b;
      gr::greenlet* home = main;
      int* count = &laps;
      for (;;) {
        other->switch_to();
        park(self, home);
        gr::greenlet::transfer(self, home, nullptr);
        ++*count;
      }
    });
    b = ::new (slot_b.slot()) gr::greenlet([&](void*) -> void* {
      gr::greenlet* other = a;
      for (;;) other->switch_to();
    });
    // A switch away from an unguarded stack reads stack_ for its canary, by design.
    const bool guarded = a->stack_region().origin == gr::stack::kind::guarded &&
                         b->stack_region().origin == gr::stack::kind::guarded;
    if (!guarded)  // the host's mapping limit left no guard pages (see gr::set_guard_budget)
      MESSAGE("skipped: no guarded stacks to be had on this host");
    if (guarded) {
      a->switch_to();  // starts a and b (a start reads stack_), and ends in park()
      slot_a.hide();
      slot_b.hide();
      for (int i = 0; i < 3; ++i) {
        a->switch_to();                            // into park(): a transfers back
        gr::greenlet::transfer(main, a, nullptr);  // into transfer(): a goes to b, b back to a, a parks
      }
      slot_a.show();
      slot_b.show();
      CHECK(laps == 3);
    }
    a->~greenlet();  // kills a, suspended in park()
    b->~greenlet();
#endif
  }
}
