// Test support: which layout slabs mapped in a scope use. gr gives slab slots guard pages where
// the kernel has guard regions (Linux 6.13 and later) and canaries elsewhere; the tests of the
// canary layout ask for it, so they run on any kernel.
//
//   gr_test::slab_layout canaries(false);   // slabs mapped from here on use canaries
#pragma once

#include "child_process.hpp"

#include <doctest/doctest.h>

#include <gr/runtime/stack.hpp>

#include <sys/mman.h>
#include <unistd.h>

namespace gr_test {

struct slab_layout {
  bool old;
  explicit slab_layout(bool guard_pages) : old(gr::detail::set_slab_guard_pages(guard_pages)) {}
  ~slab_layout() { gr::detail::set_slab_guard_pages(old); }
  slab_layout(const slab_layout&) = delete;
  slab_layout& operator=(const slab_layout&) = delete;
};

// kernel_has_guard_regions: whether madvise(MADV_GUARD_INSTALL) works here (Linux 6.13 and
// later), asked of a mapping of the test's own: where it does, slab slots must get guard pages.
inline bool kernel_has_guard_regions() {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  void* p = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = ::madvise(p, page, 102 /* MADV_GUARD_INSTALL */) == 0;
  ::munmap(p, 2 * page);
  return ok;
}

// require_guarded_slot: in a forked child, before it overflows `s`: ends the child unless `s` is
// a slab slot with a guard page: status 6 for a canary slot (a kernel without guard regions falls
// back to those), 4 for anything else.
inline void require_guarded_slot(const gr::stack& s) {
  if (s.origin == gr::stack::kind::guarded_slot) return;
  ::_exit(s.origin == gr::stack::kind::unguarded && s.has_canary() ? 6 : 4);
}

// overflowed_a_guarded_slot: the parent's side: whether the child got that far, so its overflow
// is to be checked. On a kernel without guard regions, checks that it fell back to a canary.
inline bool overflowed_a_guarded_slot(const child_result& r) {
  REQUIRE_FALSE(r.exited_with(4));
  REQUIRE_FALSE(r.exited_with(5));  // the recursion came back: nothing overflowed
  if (kernel_has_guard_regions()) return true;
  CHECK(r.exited_with(6));  // before Linux 6.13: slab stacks carry canaries instead
  return false;
}

// from_slab: whether a stack is a slab slot, of either layout.
inline bool from_slab(const gr::stack& s) {
  return s.origin == gr::stack::kind::unguarded || s.origin == gr::stack::kind::guarded_slot;
}

}  // namespace gr_test
