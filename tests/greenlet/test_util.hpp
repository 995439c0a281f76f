// Helpers shared by the greenlet tests: switch values as text or numbers, and where an address is.
#pragma once

#include <gr/greenlet/greenlet.hpp>

#include <cstdint>

namespace gr_test {

// arg / text: a string literal through a void* switch value and back.
inline void* arg(const char* s) { return const_cast<char*>(s); }
inline const char* text(void* p) { return p ? static_cast<const char*>(p) : "(null)"; }

// num / value: a small integer through a void* switch value and back.
inline void* num(std::intptr_t n) { return reinterpret_cast<void*>(n); }
inline std::intptr_t value(void* p) { return reinterpret_cast<std::intptr_t>(p); }

// on_stack_of: whether `p` lies within the stack `g` runs on.
inline bool on_stack_of(const gr::greenlet& g, const void* p) {
  const gr::stack& s = g.stack_region();
  const auto* c = static_cast<const char*>(p);
  return c >= static_cast<const char*>(s.base) && c < static_cast<const char*>(s.top());
}

}  // namespace gr_test
