#include <doctest/doctest.h>

#include <gr/greenlet/greenlet.hpp>

#include <string>

TEST_SUITE("greenlet.switch") {
  TEST_CASE("values travel both ways through switch_to") {
    gr::greenlet* main = gr::greenlet::current();
    std::string log;
    gr::greenlet g([&](void* arg) -> void* {
      log += static_cast<const char*>(arg);
      void* back = main->switch_to(const_cast<char*>("B"));
      log += static_cast<const char*>(back);
      return const_cast<char*>("D");
    });
    void* r = g.switch_to(const_cast<char*>("A"));
    log += static_cast<const char*>(r);
    r = g.switch_to(const_cast<char*>("C"));
    log += static_cast<const char*>(r);
    CHECK(log == "ABCD");
    CHECK(g.dead());
  }
}
