// Many tasks at once: spawning, joining, round-robin order and contention at scale.
#include <doctest/doctest.h>

#include "test_util.hpp"

#include <gr/sched/mutex.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait_group.hpp>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {
// TSan makes each greenlet a fiber and allows about 8,000 threads and fibers alive at once.
constexpr int tsan_scaled(int n) {
#if defined(__SANITIZE_THREAD__)
  return n > 4'000 ? 4'000 : n;
#else
  return n;
#endif
}
}  // namespace

TEST_SUITE("sched.stress") {
  TEST_CASE("100000 tasks are spawned and joined") {
    constexpr int n = tsan_scaled(100'000);
    std::vector<gr::task> tasks;
    tasks.reserve(n);
    std::vector<std::uint8_t> ran(n, 0);
    for (int i = 0; i < n; ++i)
      tasks.push_back(gr::spawn([&ran, i] { ++ran[static_cast<std::size_t>(i)]; }, {.stack_size = 16 * 1024}));
    CHECK(gr::scheduler::current().task_count() == static_cast<std::size_t>(n));
    for (auto& t : tasks) t.join();
    int once = 0;
    for (auto r : ran) once += r == 1;
    CHECK(once == n);
    CHECK(gr::scheduler::current().task_count() == 0);
  }

  TEST_CASE("10000 tasks blocked at once all wake and finish") {
    constexpr int n = tsan_scaled(10'000);
    gr::semaphore gate{0, "gate"};
    gr::wait_group wg{n};
    std::vector<int> order;
    order.reserve(n);
    for (int i = 0; i < n; ++i)
      gr::spawn([&, i] {
        gate.acquire();
        order.push_back(i);
        wg.done();
      }, {.stack_size = 16 * 1024}).detach();
    gr::yield();  // all of them block
    int waiting = 0;
    std::string stray;  // the first other task, described
    for (const gr::task_info& t : gr::scheduler::current().snapshot()) {
      if (t.is_main) continue;
      if (t.state == "blocked" && t.waiting == "acquire semaphore 'gate'")
        ++waiting;
      else if (stray.empty())
        stray = gr::scheduler::describe(t);
    }
    CHECK(waiting == n);
    CHECK(stray == "");
    gate.release(n);
    wg.wait();
    REQUIRE(order.size() == static_cast<std::size_t>(n));
    bool fifo = true;
    for (int i = 0; i < n; ++i) fifo = fifo && order[static_cast<std::size_t>(i)] == i;
    CHECK(fifo);
    gr::scheduler::current().run();
  }

  TEST_CASE("a ring of 1000 yielding tasks keeps its round-robin order") {
    constexpr int n = 1000, rounds = 50;
    std::vector<int> log;
    log.reserve(n * rounds);
    for (int i = 0; i < n; ++i)
      gr::spawn([&log, i] {
        for (int r = 0; r < rounds; ++r) {
          log.push_back(i);
          gr::yield();
        }
      }, {.stack_size = 16 * 1024}).detach();
    gr::scheduler::current().run();
    REQUIRE(log.size() == static_cast<std::size_t>(n * rounds));
    bool ordered = true;
    for (std::size_t k = 0; k < log.size(); ++k) ordered = ordered && log[k] == static_cast<int>(k % n);
    CHECK(ordered);
  }

  TEST_CASE("1000 tasks contending for one mutex take turns in FIFO order") {
    constexpr int n = 1000, rounds = 5;
    gr::mutex m{"hot"};
    std::vector<int> log;
    for (int i = 0; i < n; ++i)
      gr::spawn([&, i] {
        for (int r = 0; r < rounds; ++r) {
          std::lock_guard g(m);
          log.push_back(i);
          gr::yield();  // everyone else queues up behind the lock meanwhile
        }
      }, {.stack_size = 16 * 1024}).detach();
    gr::scheduler::current().run();
    REQUIRE(log.size() == static_cast<std::size_t>(n * rounds));
    bool fair = true;
    for (std::size_t k = 0; k < log.size(); ++k) fair = fair && log[k] == static_cast<int>(k % n);
    CHECK(fair);
  }
}
