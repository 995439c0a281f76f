// fatal(): the message, the abort hook, and what the program printed before it (checked in a
// forked child, which the abort ends).
#include <doctest/doctest.h>

#include <gr/runtime/error.hpp>

#include "child_process.hpp"

#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

TEST_SUITE("runtime.error") {
  TEST_CASE("a fatal error prints its message and flushes what the program printed before it") {
    // abort() flushes no stdio stream: output buffered for a file or pipe (a program's log, the
    // lines before a deadlock it caught) vanished with the process.
    const std::string path = "/tmp/gr_fatal_stdout_" + std::to_string(::getpid()) + ".txt";
    const gr_test::child_result r = gr_test::run_in_child([&] {
      if (!std::freopen(path.c_str(), "w", stdout)) ::_exit(4);  // fully buffered, as for a file
      std::printf("printed before the error\n");
      gr::detail::fatal("something broke");
    });
    std::ifstream f(path);
    std::stringstream out;
    out << f.rdbuf();
    std::remove(path.c_str());
    REQUIRE_FALSE(r.exited_with(4));
    CHECK(r.killed_by(SIGABRT));
    CHECK(r.says("gr: something broke\n"));
    CHECK(out.str() == "printed before the error\n");
  }
}
