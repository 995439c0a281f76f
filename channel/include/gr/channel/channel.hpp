// gr/channel/channel.hpp: Go's channels for gr tasks.
//
//   gr::channel<int> jobs(64, "jobs");          // capacity 64 (0: unbuffered, a rendezvous)
//   gr::spawn([&] {
//     for (int i = 0; i < 100; ++i) jobs.send(i);
//     jobs.close();
//   }).detach();
//   for (int job : jobs) handle(job);            // until closed and drained
//
// Semantics (Go's):
//   - send() blocks while there is no room (for capacity 0: until a receiver takes the value).
//     A receiver already waiting is handed the value directly. Send on a closed channel throws
//     gr::channel_closed.
//   - recv() returns the value, or std::nullopt once the channel is closed and drained. Values
//     buffered before close() are never lost. A receiver that frees a slot of a full buffer moves
//     the first blocked sender's value into it.
//   - close() wakes every waiter: receivers drain what is buffered, then get nullopt; blocked
//     senders throw gr::channel_closed. Closing twice throws gr::channel_closed.
//   - Waiters are served first come, first served. A blocked operation allocates nothing: its
//     wait node lives on the blocked task's stack.
//   - The main task may block too (the scheduler runs other tasks meanwhile). Blocked channel
//     operations show in deadlock reports ("waits to recv on channel 'jobs'"), and a cancelled task
//     blocked in one wakes with gr::task_cancelled (nothing it sent or received is lost: an
//     operation that completed as the cancel came returns normally).
//
// Exceptions from moving a T (T's move constructor; a T that cannot throw pays nothing for this).
// The channel stays consistent, no waiter is left stranded, and no value is doubled or dropped
// without the exception saying so:
//   - send, try_send, send_until / send_for: strong. The call throws the exception and nothing
//     changed: the value was not sent (`v` is as the failed move left it) and a receiver that was
//     waiting for it still waits.
//   - recv, try_recv, recv_until / recv_for: strong. The call throws and nothing changed: the
//     value is still buffered, or still with its blocked sender, for the next receive.
//   - The one move made on another task's behalf: a receive that takes the oldest value of a
//     full buffer then moves the first blocked sender's value into the freed slot. If that
//     throws, the receive still returns its value (throwing would lose it), and the exception
//     goes to that sender: its send (send_until, select) throws it, its value not sent; the next
//     blocked sender gets the slot. Strong for the receive; the send fails as if its own move
//     had thrown.
//   - select: as the operation its case performs. Passing the received value to a recv_case's
//     handler moves it; if that throws, select throws it and that value is gone (basic). The
//     range-for iterator likewise moves each value into itself (basic).
// T may be move-only and needs no default constructor; gr::channel<std::monostate> is a channel of
// signals (Go's chan struct{}). A channel is neither copyable nor movable;
// share it by reference (or std::shared_ptr). Use it only on its scheduler's thread.
#pragma once

#include <gr/channel/detail/chan_core.hpp>
#include <gr/channel/errors.hpp>
#include <gr/sched/clock.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>  // std::monostate: the element of a channel that only signals

namespace gr {

// recv_result: a value (status ok) or why there is none.
template <class T>
struct recv_result {
  channel_status status = channel_status::would_block;
  std::optional<T> value;
  explicit operator bool() const noexcept { return status == channel_status::ok; }
};

template <class T>
class channel : public detail::chan_core {
  static_assert(!std::is_void_v<T>, "gr::channel<void>: a channel carries values; for a signal-only channel (Go's chan "
                                    "struct{}) use gr::channel<std::monostate> or an empty struct");
  static_assert(std::is_void_v<T> || (std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T>),
                "gr::channel<T>: T must be a non-const object type (not a reference or array); send pointers, "
                "std::reference_wrapper or std::array instead");

public:
  // channel: `capacity` values can wait in the buffer (0: every send waits for a receiver). A
  // capacity no buffer of T can hold (often a negative count converted) throws gr::error naming
  // the channel. A channel belongs to one thread's tasks: one that wakes another thread's task
  // aborts, naming the task and the channel.
  explicit channel(std::size_t capacity = 0, std::string name = {});
  // ~channel: destroys buffered values. Destroying a channel that tasks are blocked on is a bug:
  // it aborts naming the channel.
  ~channel();

  // send: blocks until the value is taken or buffered. Throws gr::channel_closed if the channel is
  // (or gets) closed — the value is then not sent; gr::task_cancelled; gr::deadlock_error (main).
  void send(T&& v);
  void send(const T& v);  // See send(T&&).
  // try_send: sends only if it need not wait (a receiver waits, or the buffer has room); on an
  // unbuffered channel only when a receiver is already waiting. `v` is moved from only on ok.
  channel_status try_send(T&& v);
  channel_status try_send(const T& v);  // See try_send(T&&).
  // send_until / send_for: send() with a deadline, reporting closed instead of throwing.
  // `v` is moved from only on ok.
  channel_status send_until(T&& v, time_point deadline);
  channel_status send_until(const T& v, time_point deadline);  // See send_until(T&&).
  template <class U, class Rep, class Period>
  channel_status send_for(U&& v, std::chrono::duration<Rep, Period> d) {
    return send_until(std::forward<U>(v), detail::deadline_in(d));
  }

  // recv: blocks until a value comes (returns it) or the channel is closed and drained (nullopt).
  // Throws gr::task_cancelled; gr::deadlock_error (main task).
  std::optional<T> recv();
  // try_recv: takes a value only if one is ready (buffered, or a sender waits).
  recv_result<T> try_recv();
  // recv_until / recv_for: recv() with a deadline.
  recv_result<T> recv_until(time_point deadline);
  template <class Rep, class Period>
  recv_result<T> recv_for(std::chrono::duration<Rep, Period> d) {
    return recv_until(detail::deadline_in(d));
  }

  // close: no more sends. See the class comment. Throws gr::channel_closed if already closed.
  void close() { close_core(); }

  // Range-for: reads with recv() until the channel is closed and drained.
  class iterator;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  // For select (detail): the non-blocking halves.
  channel_status offer(T& v);                  // try to send `v` now (moved from on ok)
  channel_status take(std::optional<T>& out);  // try to receive now
  // offer_to / take_from: offer() / take() given what live_receiver() / live_sender() returned,
  // with nothing run in between (select's ready pass asks once, then completes the case it picks).
  // Inlined into offer() / take() and select, so neither pays a call for sharing the code.
  [[gnu::always_inline]] channel_status offer_to(T& v, detail::chan_node* receiver);
  [[gnu::always_inline]] channel_status take_from(std::optional<T>& out, detail::chan_node* sender);

private:
  channel_status send_wait(T& v, time_point deadline);
  channel_status recv_wait(std::optional<T>& out, time_point deadline);
  // moves_run_no_code: moving and destroying a T runs no user code, so nothing can touch the
  // channel between finding a waiter and claiming it (chan_core::claim).
  static constexpr bool moves_run_no_code = std::is_trivially_copyable_v<T>;
  T* slot(std::size_t i) noexcept { return buf_ + (i < cap_ ? i : i - cap_); }
  // pop_oldest: moves the oldest buffered value into `out` and frees its slot.
  void pop_oldest(std::optional<T>& out);
  // refill: after a receive freed a slot, moves the first blocked sender's value into it
  // (T whose move may throw: a sender whose move throws gets the exception, and the next one
  // tries).
  void refill() noexcept;

  T* buf_ = nullptr;  // cap_ slots; [head_, head_ + count_) (mod cap_) hold values
};

template <class T>
class channel<T>::iterator {
public:
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  iterator() = default;
  explicit iterator(channel* c) : ch_(c) { ++*this; }
  T& operator*() noexcept { return *cur_; }
  iterator& operator++() {
    cur_ = ch_->recv();
    return *this;
  }
  void operator++(int) { ++*this; }
  bool operator==(std::default_sentinel_t) const noexcept { return !cur_.has_value(); }

private:
  channel* ch_ = nullptr;
  std::optional<T> cur_;
};

}  // namespace gr

#include <gr/channel/detail/channel_impl.hpp>
