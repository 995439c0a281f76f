// What the stack-overflow tests share: GR_TEST_ASAN (ASan owns SIGSEGV, so a guard-page hit may
// be its report rather than gr's; see sanitizer_flags.hpp) and a recursion that overruns any
// test stack.
#pragma once

#include <cstddef>
#include <cstdint>

#include "sanitizer_flags.hpp"

namespace gr_test {

// recurse_until_overflow: frames of about 300 bytes each, far more than any test stack holds.
[[gnu::noinline]] inline std::size_t recurse_until_overflow(std::size_t depth) {
  volatile char pad[256];
  pad[0] = 1;
  if (depth > 100'000'000) return 0;
  const std::size_t below = recurse_until_overflow(depth + 1);
  return below + static_cast<std::size_t>(pad[0]);
}

// step_over_guard_page: one frame that reaches `below` bytes under `base` (the running stack's
// lowest usable byte, above its guard page), written at its low end first, as a large buffer
// filled from its start would be: the first access lands past the guard page, not on it. Should
// that memory be mapped, frames of about 300 bytes follow until one faults.
[[gnu::noinline]] inline std::size_t step_over_guard_page(const void* base, std::size_t below) {
  volatile char here = 0;
  const auto sp = reinterpret_cast<std::uintptr_t>(&here);
  const std::size_t bytes = sp - reinterpret_cast<std::uintptr_t>(base) + below;
  auto* frame = static_cast<volatile char*>(__builtin_alloca(bytes));
  frame[0] = 1;
  return recurse_until_overflow(0) + static_cast<std::size_t>(frame[0] + here);
}

}  // namespace gr_test
