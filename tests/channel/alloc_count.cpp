// A counting global operator new for the "blocking allocates nothing" tests. Sanitizer builds keep
// their own allocator (and its new/delete checks), so there the count is not available.
#include "test_util.hpp"

#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GR_TEST_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define GR_TEST_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef GR_TEST_COUNT_ALLOCATIONS
#define GR_TEST_COUNT_ALLOCATIONS 1
#endif

namespace {
thread_local std::uint64_t tls_allocations __attribute__((tls_model("initial-exec"))) = 0;
}  // namespace

namespace gr_test {
std::uint64_t allocations() noexcept { return tls_allocations; }
bool allocation_counting() noexcept { return GR_TEST_COUNT_ALLOCATIONS != 0; }
}  // namespace gr_test

#if GR_TEST_COUNT_ALLOCATIONS
// libstdc++'s other forms (new[], nothrow) call this one; its operator delete calls free().
void* operator new(std::size_t n) {
  ++tls_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif
