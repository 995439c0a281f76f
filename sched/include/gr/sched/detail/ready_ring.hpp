// gr/sched/detail/ready_ring.hpp: the scheduler's built-in ready queue: round_robin's order (first
// in, first out) in a ring of task pointers. Internal to gr: sched_head (wait.hpp) holds it, so
// that the inline wake() of the layers above can queue a task without a call.
//
// Why not round_robin's intrusive list: a yield wants to prefetch the tasks a few places behind
// the one it switches to (see prefetch_ahead in scheduler.cpp), and in a list the k-th task is k
// dependent loads away, each a cache miss in a long ring. Here it is one load from a dense array.
//
// Invariants:
//   - size() = tail_ - head_ <= capacity() = mask_ + 1, a power of two; slots
//     [head_, tail_) (mod capacity) hold the queued tasks, oldest first.
//   - A task is queued at most once (the scheduler's state machine), and only live tasks and the
//     main task are queued, so a capacity of live + 1 never overflows: launch() reserves that
//     before a new task can be queued. So push() never allocates, and blocking allocates nothing.
#pragma once

#include <gr/runtime/error.hpp>
#include <gr/sched/detail/task_ctl.hpp>

#include <cstddef>
#include <memory>

namespace gr::detail {

class ready_ring {
public:
  std::size_t size() const noexcept { return tail_ - head_; }
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t capacity() const noexcept { return slots_ ? mask_ + 1 : 0; }

  // reserve: capacity >= n, keeping the queue's order. May throw std::bad_alloc; the queue is
  // unchanged then.
  void reserve(std::size_t n) {
    if (n <= capacity()) [[likely]]
      return;
    grow(n);
  }

  void push(task_ctl* t) noexcept {
    GR_DEBUG_ASSERT(size() < capacity(), "the ready ring is full: a task was queued twice or not reserved for");
    slots_[tail_++ & mask_] = t;
  }
  task_ctl* pop() noexcept { return empty() ? nullptr : slots_[head_++ & mask_]; }
  // rotate: pop(), then push(self) if something was popped (a yield), in one pass; null if empty.
  task_ctl* rotate(task_ctl* self) noexcept {
    if (empty()) return nullptr;
    task_ctl* next = slots_[head_++ & mask_];
    if (!next) __builtin_unreachable();  // no queued task is null: the caller's null test goes
    slots_[tail_++ & mask_] = self;
    return next;
  }
  // at: the k-th queued task (0 = the next pop()); k < size().
  task_ctl* at(std::size_t k) const noexcept { return slots_[(head_ + k) & mask_]; }

private:
  // Out of line: reserve() runs on every spawn, and inlined, this made its caller save registers.
  [[gnu::noinline]] void grow(std::size_t n) {
    std::size_t cap = 64;
    while (cap < n) cap *= 2;
    auto fresh = std::make_unique<task_ctl*[]>(cap);
    const std::size_t count = size();
    for (std::size_t i = 0; i < count; ++i) fresh[i] = at(i);
    slots_ = std::move(fresh);
    mask_ = cap - 1;
    head_ = 0;
    tail_ = count;
  }

  std::unique_ptr<task_ctl*[]> slots_;
  std::size_t mask_ = 0;
  std::size_t head_ = 0;  // both only grow (mod 2^64; their difference is the size)
  std::size_t tail_ = 0;
};

}  // namespace gr::detail
