// gr/channel/detail/chan_core.hpp: what every channel<T> shares, whatever T is: the two wait
// queues, the closed flag, the buffer's bookkeeping, and the matching rules for select waiters.
// Internal to the channel layer.
#pragma once

#include <gr/channel/errors.hpp>
#include <gr/sched/wait.hpp>
#include <gr/sched/wait_queue.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

namespace gr::detail {

struct select_state;

// chan_node: one blocked send or receive, on the blocked task's stack.
//   send: `value` points at the sender's T, moved from when a receiver takes it.
//   recv: `value` points at the receiver's std::optional<T>, filled by the sender.
struct chan_node : wait_node {
  void* value = nullptr;
  select_state* sel = nullptr;  // set when the node belongs to a select
  std::exception_ptr error;     // why a blocked send failed, for its task to throw:
                                //   closed: close()'s channel_closed, built while the channel
                                //     exists (the closer may destroy it at once);
                                //   not closed: what moving its value into a freed slot of the
                                //     buffer threw (channel<T>::refill)
  std::uint32_t case_index = 0;
  bool closed = false;          // completed by close(), not by a value

  using wait_node::wait_node;
};

// select_state: one parked select. The first channel operation that matches one of its nodes
// marks it fired; its other nodes are stale from then on and every queue skips them.
struct select_state {
  bool fired = false;
  std::uint32_t index = 0;
};

// enter_blocking_call: the calling task, after raising gr::task_cancelled if it was cancelled.
// Every blocking channel call and select starts here, so cancellation is sticky even for calls
// that need not wait. It asks the scheduler once (current_task) instead of twice (check_cancelled,
// then current_task) on the hot path; a thread that is shutting down is caught by park(), should
// the call have to wait.
inline task_ctl* enter_blocking_call() {
  task_ctl* self = current_task();
  if (self->cancel_requested) [[unlikely]]
    check_cancelled();
  return self;
}

class chan_core {
public:
  chan_core(std::size_t capacity, std::string name) : cap_(capacity), name_(std::move(name)) {}
  chan_core(const chan_core&) = delete;
  chan_core& operator=(const chan_core&) = delete;

  std::size_t capacity() const noexcept { return cap_; }
  std::size_t size() const noexcept { return count_; }
  bool closed() const noexcept { return closed_; }
  const std::string& name() const noexcept { return name_; }
  // label: "channel 'name'" or "channel 0x...", as messages name it.
  std::string label() const;

  // live_sender / live_receiver: the waiter a receive / send would pair with now, or null.
  // (Stale select nodes are dropped on the way.) select's ready pass keeps what it finds for
  // take_from() / offer_to() (channel<T>).
  chan_node* live_sender() noexcept { return live_front(sendq_); }
  chan_node* live_receiver() noexcept { return live_front(recvq_); }
  bool has_receiver() noexcept { return live_receiver() != nullptr; }
  // recv_ready / send_ready: would a receive / send complete now rather than report
  // would_block, given the live sender / receiver `peer` (live_sender() / live_receiver())?
  // A closed channel is ready for both (recv: what is left, then nullopt; send: it throws).
  bool recv_ready(const chan_node* peer) const noexcept { return peer || count_ > 0 || closed_; }
  bool send_ready(const chan_node* peer) const noexcept { return peer || count_ < cap_ || closed_; }
  void enqueue_recv(chan_node& n) noexcept { recvq_.push_back(n); }
  void enqueue_send(chan_node& n) noexcept { sendq_.push_back(n); }
  [[noreturn]] void throw_send_closed() const { throw_closed("send"); }

protected:
  ~chan_core();

  // live_front: the first waiter that can still be matched; pops stale select nodes.
  static chan_node* live_front(wait_queue& q) noexcept {
    while (auto* n = static_cast<chan_node*>(q.front())) {
      if (!n->sel || !n->sel->fired) return n;
      q.remove(*n);
    }
    return nullptr;
  }
  // claim: unlinks the live waiter `n` from `q` and claims it (firing its select, if any). Claim
  // a waiter only once its value has moved, or to complete it with the exception the move threw
  // (channel<T>::refill): a move that throws before the claim leaves the waiter queued and its
  // select unfired, as if the operation had never found it.
  // `AtFront`: nothing ran since live_front() found `n`, so it is still the queue's front and
  // is unlinked with remove_front(). Without it, a value's move (user code) ran in between: a move
  // that touched this channel may have unlinked the waiter already, and remove() checks.
  template <bool AtFront>
  static void claim(wait_queue& q, chan_node* n) noexcept {
    if constexpr (AtFront)
      q.remove_front(*n);
    else
      q.remove(*n);
    if (n->sel) {
      n->sel->fired = true;
      n->sel->index = n->case_index;
    }
  }
  // take_waiter: pops the first live waiter and claims it.
  static chan_node* take_waiter(wait_queue& q) noexcept {
    chan_node* n = live_front(q);
    if (n) claim<true>(q, n);
    return n;
  }
  // complete: the waiter's operation is done; it runs again soon.
  static void complete(chan_node* n) noexcept {
    n->signaled = true;
    wake(n->task);
  }
  [[noreturn]] void throw_closed(const char* op) const;
  // throw_capacity: gr::error for a capacity no buffer of `value_size`-byte values can have.
  [[noreturn]] void throw_capacity(std::size_t value_size) const;
  // close_waiters: marks the channel closed and completes every waiter with `closed`.
  void close_core();
  // park_on: parks the current task `self` in `q` (send or recv: `why` is send_why_ or
  // recv_why_) until completed, a cancel or a deadlock, with its wait node (on this frame)
  // pointing at `value`. Returns ok or closed (completed); throws on cancel / deadlock, and
  // rethrows what moving a blocked sender's value threw (chan_node::error).
  // `throw_if_closed` (send()): a sender completed by close() throws the channel_closed close()
  // left on its node, built while the channel existed (the closer may have destroyed it since),
  // instead of returning closed.
  channel_status park_on(wait_queue& q, task_ctl* self, void* value, const wait_reason& why,
                         bool throw_if_closed = false);
  // park_on_until: park_on() that also ends at `deadline` (timeout).
  channel_status park_on_until(wait_queue& q, task_ctl* self, void* value, const wait_reason& why,
                               time_point deadline);

  wait_queue recvq_;  // receivers waiting: only while the buffer is empty
  wait_queue sendq_;  // senders waiting: only while the buffer is full (cap 0: always "full")
  std::size_t cap_;
  std::size_t count_ = 0;  // values in the buffer
  std::size_t head_ = 0;   // the oldest value's slot
  bool closed_ = false;
  std::string name_;
  // What a task blocked here waits on, built once rather than on every park.
  const wait_reason send_why_{"send on", "channel", this, &name_};
  const wait_reason recv_why_{"recv on", "channel", this, &name_};
};

}  // namespace gr::detail
