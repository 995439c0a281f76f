// The program tools/gdb/gr.py is tested on (gdb_test.cmake): tasks blocked in nested calls, so
// that `gr bt <id>` must unwind each one from its saved fcontext to show the right functions.
//
// When every task but the prober is blocked, the prober calls gr_debug_all_blocked(), where the
// test's breakpoint stops. The tasks then:
//   #0 main       waits on wait_group 'workers'
//   #1 consumer   outer_wait() -> inner_recv() -> recv on channel 'jobs'
//   #2 sleeper    nap() -> nap_deeply() -> sleep_for(1 h)
//   #3 (no name)  pick_one() -> select 'pick' over channels 'left' and 'right' and a nil channel
//   #4 joiner     join task 'consumer'
//   #5 prober     running (in gr_debug_all_blocked)
//   #6 holder     holds mutex 'registry', waits on semaphore 'gate'
//   #7 waiter     waits to lock mutex 'registry' (held by #6)
// Afterwards the prober unblocks them all and the program exits 0. Built with -O0 -g.
#include <gr/gr.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>

extern "C" {
// gr_debug_all_blocked: the breakpoint. Called once, while every other task is blocked.
[[gnu::noinline]] void gr_debug_all_blocked() { asm volatile("" ::: "memory"); }
}

namespace {

// done_on_exit: counts a worker done however its task ends (a cancelled sleeper too).
struct done_on_exit {
  gr::wait_group& wg;
  ~done_on_exit() { wg.done(); }
};

[[gnu::noinline]] int inner_recv(gr::channel<int>& ch) {
  std::optional<int> v = ch.recv();
  return v ? *v : -1;
}

[[gnu::noinline]] int outer_wait(gr::channel<int>& ch) { return inner_recv(ch) + 1; }

[[gnu::noinline]] void nap_deeply() { gr::sleep_for(std::chrono::hours(1)); }

[[gnu::noinline]] void nap() { nap_deeply(); }

[[gnu::noinline]] int pick_one(gr::channel<int>& left, gr::channel<int>& right) {
  int got = 0;
  gr::channel<int>* nowhere = nullptr;  // Go's nil channel: its case never fires
  gr::select(gr::select_options{.name = "pick"},
             gr::recv_case(left, [&](std::optional<int> v) { got = v.value_or(0); }),
             gr::recv_case(right, [&](std::optional<int> v) { got = v.value_or(0); }),
             gr::recv_case(nowhere, [&](std::optional<int>) { got = -1000; }));  // switched off
  return got;
}

bool others_blocked() {
  for (const auto& t : gr::scheduler::current().snapshot())
    if (t.id != gr::this_task::id() && t.state != "blocked" && t.state != "done") return false;
  return true;
}

}  // namespace

int main() {
  gr::wait_group wg(7, "workers");
  gr::mutex registry("registry");
  gr::semaphore gate(0, "gate");
  gr::channel<int> jobs(0, "jobs");
  gr::channel<int> left(0, "left");
  gr::channel<int> right(0, "right");
  int result = 0;

  gr::task consumer = gr::spawn(
      [&] {
        done_on_exit d{wg};
        result += outer_wait(jobs);
      },
      {.name = "consumer"});
  gr::task sleeper = gr::spawn(
      [&] {
        done_on_exit d{wg};
        nap();
      },
      {.name = "sleeper"});
  gr::spawn([&] {
    done_on_exit d{wg};
    result += pick_one(left, right);
  }).detach();
  gr::spawn(
      [&, c = std::move(consumer)]() mutable {
        done_on_exit d{wg};
        c.join();
      },
      {.name = "joiner"})
      .detach();
  gr::spawn(
      [&] {
        done_on_exit d{wg};
        while (!others_blocked()) gr::yield();
        gr_debug_all_blocked();
        jobs.send(41);
        sleeper.cancel();
        right.send(100);
        gate.release();
      },
      {.name = "prober"})
      .detach();
  gr::spawn(
      [&] {
        done_on_exit d{wg};
        std::lock_guard lock(registry);
        gate.acquire();
      },
      {.name = "holder"})
      .detach();
  gr::spawn(
      [&] {
        done_on_exit d{wg};
        std::lock_guard lock(registry);
      },
      {.name = "waiter"})
      .detach();

  wg.wait();
  std::printf("gdb_target: done, result %d\n", result);
  return result == 142 ? 0 : 1;
}
