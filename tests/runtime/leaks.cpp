#include "leak_check.hpp"

#include <gr/runtime/stack.hpp>

#include <string>

std::string gr_test::leaks() {
  const auto st = gr::stack_statistics();
  if (st.live != 0) return std::to_string(st.live) + " stack(s) not released";
  return {};
}
