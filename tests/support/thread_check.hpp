// Test support: run gr code on a std::thread of its own and check that thread for leaks.
//
//   gr_test::thread_outcome r = gr_test::on_thread([&] { ...spawn, join... });
//   CHECK(r.leaks_at_end == "");  // nothing left when the body returned
//   CHECK(r.stacks_kept == 0);    // and every stack unmapped once the thread was gone
//
// The leak check after each test case (main.cpp) reads per-thread counters, so it never sees
// another thread. on_thread looks at that thread twice:
//   - leaks_at_end: gr_test::leaks() run on the thread right after `body` returns. Exact, but a
//     test that ends its thread with tasks blocked on purpose expects it to be non-empty.
//   - stacks_kept: guarded stacks mapped in the process after the join minus before the thread
//     started. The thread's stack pool is unmapped at its exit, tasks still blocked then are
//     unwound and their stacks unmapped too, and the calling thread maps none while it waits in
//     join(): anything but 0 is a stack the thread lost.
#pragma once

#include "leak_check.hpp"

#include <gr/runtime/stack.hpp>

#include <string>
#include <thread>

namespace gr_test {

struct thread_outcome {
  std::string leaks_at_end;
  long long stacks_kept = 0;
};

template <class Body>
thread_outcome on_thread(Body&& body) {
  thread_outcome r;
  const auto before = static_cast<long long>(gr::stack_statistics().guarded_live);
  std::thread([&] {
    body();
    r.leaks_at_end = leaks();
  }).join();
  r.stacks_kept = static_cast<long long>(gr::stack_statistics().guarded_live) - before;
  return r;
}

}  // namespace gr_test
