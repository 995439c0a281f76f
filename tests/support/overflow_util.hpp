// What the stack-overflow tests share: GR_TEST_ASAN (ASan owns SIGSEGV, so a guard-page hit may
// be its report rather than gr's) and a recursion that overruns any test stack.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GR_TEST_ASAN 1
#endif
#endif

namespace gr_test {

// recurse_until_overflow: frames of about 300 bytes each, far more than any test stack holds.
[[gnu::noinline]] inline std::size_t recurse_until_overflow(std::size_t depth) {
  volatile char pad[256];
  pad[0] = 1;
  if (depth > 100'000'000) return 0;
  const std::size_t below = recurse_until_overflow(depth + 1);
  return below + static_cast<std::size_t>(pad[0]);
}

}  // namespace gr_test
