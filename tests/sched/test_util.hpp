// Helpers shared by the sched tests: a clock set for the length of a test, a log tasks append to,
// and stderr captured from the file descriptor up (for the reports gr prints itself).
#pragma once

#include "use_clock.hpp"

#include <gr/sched/clock.hpp>
#include <gr/sched/scheduler.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>

#include <unistd.h>

namespace gr_test {

using namespace std::chrono_literals;

// at: a time point `d` after the epoch the test clocks start from.
inline gr::time_point at(gr::duration d) { return gr::time_point{} + d; }

// capture_stderr: while alive, everything written to file descriptor 2 goes to a temporary
// file; text() flushes and returns it so far. Restores the real stderr when destroyed.
class capture_stderr {
public:
  capture_stderr() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    saved_ = ::dup(STDERR_FILENO);
    if (file_ && saved_ >= 0) ::dup2(::fileno(file_), STDERR_FILENO);
  }
  ~capture_stderr() { restore(); if (file_) std::fclose(file_); }
  capture_stderr(const capture_stderr&) = delete;
  capture_stderr& operator=(const capture_stderr&) = delete;

  std::string text() {
    std::fflush(stderr);
    std::string out;
    if (!file_) return out;
    std::rewind(file_);
    char buf[512];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) out.append(buf, n);
    return out;
  }

  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

private:
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

// contains: whether `text` contains `part` (doctest prints both when a CHECK on it fails).
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace gr_test
