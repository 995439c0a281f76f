// gr/sched/wait_queue.hpp: the intrusive FIFO of blocked tasks that every blocking primitive
// (mutex, condition_variable, channel, select, join) is built from.
//
//   gr::detail::wait_node me{gr::detail::current_task()};   // on the blocked task's own stack
//   queue.push_back(me);
//   auto why = gr::detail::park({"lock", "mutex", this, &name_});
//   if (!me.signaled) queue.remove(me);                    // timeout, cancel: take yourself out
//
// A waker pops a node, completes the waiter's operation (hands it the value, the lock...), sets
// node.signaled and calls gr::detail::wake(node.task). Nothing is allocated: nodes live on the
// blocked tasks' stacks, and stay linked only while their task is parked.
// Owned by the scheduler's thread, like everything in sched.
#pragma once

#include <gr/runtime/error.hpp>

#include <cstddef>

namespace gr::detail {

struct task_ctl;
class wait_queue;

// wait_node: one blocked operation. Layers above derive from it to carry their payload. A node
// still linked when it is destroyed (its task unwound by an exception while parked) unlinks
// itself, so no queue is ever left pointing into a dead stack frame.
struct wait_node {
  task_ctl* task = nullptr;
  wait_node* prev = nullptr;
  wait_node* next = nullptr;
  wait_queue* queue = nullptr;  // the queue it is linked in, null when not linked
  bool signaled = false;        // a waker completed this operation; the waiter must not undo it

  wait_node() = default;
  explicit wait_node(task_ctl* t) noexcept : task(t) {}
  wait_node(const wait_node&) = delete;
  wait_node& operator=(const wait_node&) = delete;
  ~wait_node();

  bool linked() const noexcept { return queue != nullptr; }
};

class wait_queue {
public:
  wait_queue() = default;
  wait_queue(const wait_queue&) = delete;
  wait_queue& operator=(const wait_queue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  wait_node* front() const noexcept { return head_; }

  void push_back(wait_node& n) noexcept {
    n.prev = tail_;
    n.next = nullptr;
    if (tail_)
      tail_->next = &n;
    else
      head_ = &n;
    tail_ = &n;
    n.queue = this;
    ++size_;
  }

  wait_node* pop_front() noexcept {
    wait_node* n = head_;
    if (n) remove_front(*n);
    return n;
  }

  // remove_front: unlinks `n`, which must be the front (pop_front, a channel's hand-over). Fewer
  // tests than remove(), and the unlinked node's own links are left as they were (only `queue`
  // says whether a node is linked).
  void remove_front(wait_node& n) noexcept {
    GR_DEBUG_ASSERT(head_ == &n && n.queue == this, "remove_front of a node that is not the queue's front");
    head_ = n.next;
    if (head_)
      head_->prev = nullptr;
    else
      tail_ = nullptr;
    n.queue = nullptr;
    --size_;
  }

  // remove: unlinks `n` if it is linked in this queue.
  void remove(wait_node& n) noexcept {
    if (n.queue != this) return;
    if (n.prev)
      n.prev->next = n.next;
    else
      head_ = n.next;
    if (n.next)
      n.next->prev = n.prev;
    else
      tail_ = n.prev;
    n.prev = n.next = nullptr;
    n.queue = nullptr;
    --size_;
  }

private:
  wait_node* head_ = nullptr;
  wait_node* tail_ = nullptr;
  std::size_t size_ = 0;
};

inline wait_node::~wait_node() {
  if (queue) queue->remove(*this);
}

}  // namespace gr::detail
