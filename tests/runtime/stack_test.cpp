#include <doctest/doctest.h>

#include <gr/runtime/stack.hpp>

TEST_SUITE("runtime.stack") {
  TEST_CASE("a released stack is reused by the next allocation of the same size") {
    gr::stack a = gr::allocate_stack(64 * 1024);
    void* base = a.base;
    gr::release_stack(a);
    gr::stack b = gr::allocate_stack(64 * 1024);
    CHECK(b.base == base);
    gr::release_stack(b);
  }
}
