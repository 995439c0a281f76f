// gr/sched/ready_policy.hpp: which runnable task runs next (the mechanism/policy split of
// Boost.Fiber's algorithm).
//
//   class lifo final : public gr::ready_policy { ... };      // push/pop/empty/size
//   gr::scheduler::current().set_policy(std::make_unique<lifo>());
//
// The scheduler hands the policy opaque task pointers; a policy links them through
// ready_policy::link(t), one pointer per task reserved for it. A task is in at most one policy
// at a time. Called only on the scheduler's thread. The default is round_robin's order (FIFO),
// kept by the scheduler's own queue without a virtual call: a ring of task pointers sized at
// spawn, so a yield can prefetch the tasks a few places behind the next one.
#pragma once

#include <cstddef>

namespace gr {

namespace detail {
struct task_ctl;
}

class ready_policy {
public:
  virtual ~ready_policy() = default;
  // push: `t` became runnable.
  virtual void push(detail::task_ctl* t) noexcept = 0;
  // pop: the task to run next, or null when there is none.
  virtual detail::task_ctl* pop() noexcept = 0;
  virtual bool empty() const noexcept = 0;
  virtual std::size_t size() const noexcept = 0;

protected:
  // link: the intrusive pointer a policy may use to chain `t`.
  static detail::task_ctl*& link(detail::task_ctl* t) noexcept;
};

// round_robin: first in, first out; a task that yields goes behind every other runnable task.
class round_robin final : public ready_policy {
public:
  void push(detail::task_ctl* t) noexcept override {
    link(t) = nullptr;
    if (tail_)
      link(tail_) = t;
    else
      head_ = t;
    tail_ = t;
    ++size_;
  }
  detail::task_ctl* pop() noexcept override {
    detail::task_ctl* t = head_;
    if (t) {
      head_ = link(t);
      if (!head_) tail_ = nullptr;
      --size_;
    }
    return t;
  }
  bool empty() const noexcept override { return head_ == nullptr; }
  std::size_t size() const noexcept override { return size_; }

private:
  detail::task_ctl* head_ = nullptr;
  detail::task_ctl* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace gr

#include <gr/sched/detail/task_ctl.hpp>

inline gr::detail::task_ctl*& gr::ready_policy::link(detail::task_ctl* t) noexcept { return t->next_ready; }
