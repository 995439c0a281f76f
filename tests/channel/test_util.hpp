// Helpers shared by the channel tests: the capacities every behaviour is checked at, a clock set
// for the length of a test, a heap-allocation counter, and small value types (move-only, no
// default constructor).
#pragma once

#include "use_clock.hpp"

#include <gr/channel/channel.hpp>
#include <gr/sched/clock.hpp>
#include <gr/sched/scheduler.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gr_test {

using namespace std::chrono_literals;

// cap<N>: a capacity as a type, for TEST_CASE_TEMPLATE(..., C, GR_TEST_CAPACITIES).
template <std::size_t N>
struct cap {
  static constexpr std::size_t value = N;
};

// contains: whether `text` contains `part` (doctest prints both when a CHECK on it fails).
inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// no_default: a move-only value with no default constructor.
class no_default {
public:
  explicit no_default(int v) : v_(v) {}
  no_default(no_default&& o) noexcept : v_(o.v_) { o.v_ = -1; }
  no_default& operator=(no_default&& o) noexcept {
    v_ = o.v_;
    o.v_ = -1;
    return *this;
  }
  int get() const noexcept { return v_; }

private:
  int v_;
};

// fill: sends `n` values (first, first + 1, ...) without blocking; they must all fit.
template <class T>
void fill(gr::channel<T>& c, std::size_t n, int first = 0) {
  for (std::size_t i = 0; i < n; ++i) REQUIRE(c.try_send(T(first + static_cast<int>(i))) == gr::channel_status::ok);
}

// check_no_stale_receiver: `c` (empty, open) has no receiver registered: a send is buffered (or,
// on an unbuffered channel, finds nobody to take it). Leaves `c` empty.
inline void check_no_stale_receiver(gr::channel<int>& c) {
  REQUIRE(c.size() == 0);
  if (c.capacity() == 0) {
    CHECK(c.try_send(-1) == gr::channel_status::would_block);
  } else {
    CHECK(c.try_send(-1) == gr::channel_status::ok);
    CHECK(c.size() == 1);
    CHECK(c.try_recv().value == -1);
  }
}

// check_no_stale_sender: `c` holds exactly first, first + 1, ..., first + n - 1 and has no
// sender registered: they come out in order, then nothing.
inline void check_no_stale_sender(gr::channel<int>& c, int first, int n) {
  for (int i = 0; i < n; ++i) CHECK(c.try_recv().value == first + i);
  CHECK(c.try_recv().status == gr::channel_status::would_block);
}

// chi_square: Pearson's statistic of `counts` against a uniform distribution over them.
// With k counts it follows chi-square with k - 1 degrees of freedom: for 1 to 3 of them, 40 is
// exceeded with probability below 1e-7, so a test that fails past 40 is not flaky; for 15 of
// them (16 counts), 65 is (3.4e-8).
inline double chi_square(const std::vector<int>& counts) {
  double total = 0;
  for (int c : counts) total += c;
  const double expected = total / static_cast<double>(counts.size());
  double x = 0;
  for (int c : counts) x += (c - expected) * (c - expected) / expected;
  return x;
}

// allocations: operator new calls in this thread so far (alloc_count.cpp replaces the global
// operator new). allocation_counting: false in sanitizer builds, which keep their own.
std::uint64_t allocations() noexcept;
bool allocation_counting() noexcept;

}  // namespace gr_test

TYPE_TO_STRING_AS("cap 0", gr_test::cap<0>);
TYPE_TO_STRING_AS("cap 1", gr_test::cap<1>);
TYPE_TO_STRING_AS("cap 2", gr_test::cap<2>);
TYPE_TO_STRING_AS("cap 64", gr_test::cap<64>);

// The capacities every channel behaviour is tested at: unbuffered, one slot, a small buffer and
// a large one.
#define GR_TEST_CAPACITIES gr_test::cap<0>, gr_test::cap<1>, gr_test::cap<2>, gr_test::cap<64>
