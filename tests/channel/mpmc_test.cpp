// Many producers and many consumers on one channel (and on two, through select): every value is
// delivered exactly once, and each consumer sees each producer's values in the order sent.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <cstdint>
#include <numeric>
#include <vector>

using gr::channel_status;
using namespace gr_test;

namespace {

constexpr int producers = 5;
constexpr int consumers = 4;
constexpr int per_producer = 400;
constexpr int total = producers * per_producer;

// jitter: a deterministic coin per task, so tasks yield at scattered points and the interleaving
// is not plain round-robin.
struct jitter {
  std::uint32_t state;
  bool operator()() noexcept {
    state = state * 1664525u + 1013904223u;
    return (state >> 28) < 5;  // about one time in three
  }
};

// ledger: what the consumers received, checked at the end.
struct ledger {
  std::vector<int> seen = std::vector<int>(total, 0);  // times each value arrived
  std::vector<std::int64_t> count = std::vector<std::int64_t>(consumers, 0);
  std::vector<std::int64_t> sum = std::vector<std::int64_t>(consumers, 0);
  bool in_order = true;

  // take: consumer k got v; last[p] is the last value it got from producer p.
  void take(int k, int v, std::vector<int>& last) {
    ++seen[v];
    ++count[k];
    sum[k] += v;
    const int p = v / per_producer;
    if (v <= last[p]) in_order = false;
    last[p] = v;
  }

  void check() const {
    CHECK(std::accumulate(count.begin(), count.end(), std::int64_t{0}) == total);
    CHECK(std::accumulate(sum.begin(), sum.end(), std::int64_t{0}) == std::int64_t{total} * (total - 1) / 2);
    int wrong = 0;
    for (int s : seen) wrong += s != 1;
    CHECK(wrong == 0);  // each value exactly once
    CHECK(in_order);
  }
};

}  // namespace

TEST_SUITE("channel.mpmc") {
  TEST_CASE_TEMPLATE("many producers and consumers deliver every value exactly once", C, GR_TEST_CAPACITIES) {
    gr::channel<int> work(C::value, "work");
    gr::wait_group producing(producers);
    ledger got;
    std::vector<gr::task> tasks;
    for (int p = 0; p < producers; ++p)
      tasks.push_back(gr::spawn([&, p] {
        jitter coin{static_cast<std::uint32_t>(p + 1)};
        for (int i = 0; i < per_producer; ++i) {
          const int v = p * per_producer + i;
          switch (i % 3) {  // blocking, non-blocking and timed sends
            case 0: work.send(v); break;
            case 1:
              while (work.try_send(v) != channel_status::ok) gr::yield();
              break;
            case 2: CHECK(work.send_for(v, 1h) == channel_status::ok); break;
          }
          if (coin()) gr::yield();
        }
        producing.done();
      }));
    tasks.push_back(gr::spawn([&] {
      producing.wait();
      work.close();
    }));
    for (int k = 0; k < consumers; ++k)
      tasks.push_back(gr::spawn([&, k] {
        jitter coin{static_cast<std::uint32_t>(100 + k)};
        std::vector<int> last(producers, -1);
        if (k == 0) {
          for (int v : work) {
            got.take(k, v, last);
            if (coin()) gr::yield();
          }
        } else {
          for (;;) {  // the timed form, with a deadline that never passes
            gr::recv_result<int> r = work.recv_for(1h);
            if (r.status == channel_status::closed) break;
            REQUIRE(r.status == channel_status::ok);
            got.take(k, *r.value, last);
            if (coin()) gr::yield();
          }
        }
      }));
    for (auto& t : tasks) t.join();
    got.check();
  }

  TEST_CASE_TEMPLATE("producers and consumers selecting over two channels deliver every value exactly once", C,
                     GR_TEST_CAPACITIES) {
    gr::channel<int> left(C::value, "left"), right(C::value, "right");
    gr::wait_group producing(producers);
    ledger got;
    std::vector<gr::task> tasks;
    for (int p = 0; p < producers; ++p)
      tasks.push_back(gr::spawn([&, p] {
        jitter coin{static_cast<std::uint32_t>(p + 7)};
        for (int i = 0; i < per_producer; ++i) {
          const int v = p * per_producer + i;
          gr::select(gr::send_case(left, v), gr::send_case(right, v));
          if (coin()) gr::yield();
        }
        producing.done();
      }));
    tasks.push_back(gr::spawn([&] {
      producing.wait();
      left.close();
      right.close();
    }));
    for (int k = 0; k < consumers; ++k)
      tasks.push_back(gr::spawn([&, k] {
        jitter coin{static_cast<std::uint32_t>(200 + k)};
        // Values of one producer may overtake each other across the two channels, so order is
        // checked per channel.
        std::vector<int> last_left(producers, -1), last_right(producers, -1);
        bool left_open = true, right_open = true;
        while (left_open || right_open) {
          auto on_left = [&](std::optional<int> v) {
            if (v)
              got.take(k, *v, last_left);
            else
              left_open = false;
          };
          auto on_right = [&](std::optional<int> v) {
            if (v)
              got.take(k, *v, last_right);
            else
              right_open = false;
          };
          if (left_open && right_open)
            gr::select(gr::recv_case(left, on_left), gr::recv_case(right, on_right));
          else if (left_open)
            gr::select(gr::recv_case(left, on_left), gr::timeout_case(1h));
          else
            on_right(right.recv());
          if (coin()) gr::yield();
        }
      }));
    for (auto& t : tasks) t.join();
    got.check();
  }
}
