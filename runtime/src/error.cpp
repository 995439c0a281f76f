#include <gr/runtime/error.hpp>

#include <cstdio>
#include <cstdlib>

namespace gr::detail {

void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept {
  std::fprintf(stderr, "gr: %s:%d: assertion `%s` failed: %s\n", file, line, expr, msg);
  std::fflush(stderr);
  std::abort();
}

void fatal(const std::string& msg) noexcept {
  std::fprintf(stderr, "gr: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace gr::detail
