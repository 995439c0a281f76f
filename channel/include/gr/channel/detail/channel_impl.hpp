// gr/channel/detail/channel_impl.hpp: channel<T>'s template bodies (see channel.hpp).
//
// Invariants (Go's chan.go):
//   - At least one of recvq_ and sendq_ holds no live waiter.
//   - A live receiver waits only while count_ == 0; a live sender only while count_ == cap_.
//   - closed_ implies neither queue holds a live waiter (close() completes every waiter, and no
//     operation waits on a closed channel).
//   - A waiter is claimed (unlinked, its select fired) only after its value has moved: a T whose
//     move throws must find the channel, and every waiter, as they were (see channel.hpp).
#pragma once

#include <gr/channel/channel.hpp>

#include <exception>
#include <memory>
#include <type_traits>

namespace gr {

template <class T>
channel<T>::channel(std::size_t capacity, std::string name) : detail::chan_core(capacity, std::move(name)) {
  // A capacity past what an array of T can hold is a mistake (often a negative number converted),
  // not a lack of memory: say so, naming the channel, rather than std::bad_array_new_length.
  if (cap_ > std::allocator_traits<std::allocator<T>>::max_size(std::allocator<T>())) [[unlikely]]
    throw_capacity(sizeof(T));
  if (cap_) buf_ = std::allocator<T>().allocate(cap_);
}

template <class T>
channel<T>::~channel() {
  for (std::size_t i = 0; i < count_; ++i) std::destroy_at(slot(head_ + i));
  if (buf_) std::allocator<T>().deallocate(buf_, cap_);
}

template <class T>
channel_status channel<T>::offer(T& v) {
  return offer_to(v, live_receiver());
}

template <class T>
channel_status channel<T>::take(std::optional<T>& out) {
  return take_from(out, live_sender());
}

template <class T>
inline channel_status channel<T>::offer_to(T& v, detail::chan_node* r) {
  // closed: `r` is null (see the invariants).
  if (closed_) return channel_status::closed;
  if (r) {
    // Straight to the receiver, claimed only once the value is there: a throw leaves it waiting.
    static_cast<std::optional<T>*>(r->value)->emplace(std::move(v));
    claim<moves_run_no_code>(recvq_, r);
    complete(r);
    return channel_status::ok;
  }
  if (count_ < cap_) {
    std::construct_at(slot(head_ + count_), std::move(v));  // a throw leaves the slot free
    ++count_;
    return channel_status::ok;
  }
  return channel_status::would_block;
}

template <class T>
inline channel_status channel<T>::take_from(std::optional<T>& out, detail::chan_node* s) {
  if (s) {
    T& sent = *static_cast<T*>(s->value);
    if (cap_ == 0) {
      out.emplace(std::move(sent));  // a throw leaves the sender waiting (claimed below)
    } else if constexpr (std::is_nothrow_move_constructible_v<T>) {
      // The buffer is full: take the oldest value, and move the sender's into the freed slot.
      T* head = slot(head_);
      out.emplace(std::move(*head));
      std::destroy_at(head);
      std::construct_at(head, std::move(sent));
      head_ = head_ + 1 == cap_ ? 0 : head_ + 1;
    } else {
      // Two moves, and the second cannot be undone by a third that might throw as well: once
      // the oldest value is ours, a throw while moving the sender's value in is the sender's.
      pop_oldest(out);
      refill();
      return channel_status::ok;
    }
    claim<moves_run_no_code>(sendq_, s);
    complete(s);
    return channel_status::ok;
  }
  if (count_ > 0) {
    pop_oldest(out);
    return channel_status::ok;
  }
  return closed_ ? channel_status::closed : channel_status::would_block;
}

template <class T>
void channel<T>::pop_oldest(std::optional<T>& out) {
  T* head = slot(head_);
  out.emplace(std::move(*head));  // a throw leaves the value where it was
  std::destroy_at(head);
  head_ = head_ + 1 == cap_ ? 0 : head_ + 1;
  --count_;
}

template <class T>
void channel<T>::refill() noexcept {
  while (detail::chan_node* s = live_front(sendq_)) {
    claim<true>(sendq_, s);
    try {
      std::construct_at(slot(head_ + count_), std::move(*static_cast<T*>(s->value)));
    } catch (...) {
      s->error = std::current_exception();  // its send throws it: the value was not sent
      complete(s);
      continue;  // the slot is still free: the next blocked sender's turn
    }
    ++count_;
    complete(s);
    return;
  }
}

// send_wait / recv_wait: the timed forms. The fast path (the operation completes at once) stays
// small; the wait node and the park live in chan_core, which only a blocking call reaches.
template <class T>
channel_status channel<T>::send_wait(T& v, time_point deadline) {
  detail::task_ctl* self = detail::enter_blocking_call();
  const channel_status s = offer(v);
  if (s != channel_status::would_block) return s;
  return park_on_until(sendq_, self, &v, send_why_, deadline);
}

template <class T>
channel_status channel<T>::recv_wait(std::optional<T>& out, time_point deadline) {
  detail::task_ctl* self = detail::enter_blocking_call();
  const channel_status s = take(out);
  if (s != channel_status::would_block) return s;
  return park_on_until(recvq_, self, &out, recv_why_, deadline);
}

template <class T>
void channel<T>::send(T&& v) {
  detail::task_ctl* self = detail::enter_blocking_call();
  const channel_status s = offer(v);
  if (s == channel_status::ok) return;
  // Closed here means closed before the send, so the channel is still there to name; closed while
  // waiting throws inside park_on.
  if (s == channel_status::closed) throw_closed("send");
  park_on(sendq_, self, &v, send_why_, true);
}

template <class T>
void channel<T>::send(const T& v) {
  T copy(v);
  send(std::move(copy));
}

template <class T>
channel_status channel<T>::try_send(T&& v) {
  return offer(v);
}

template <class T>
channel_status channel<T>::try_send(const T& v) {
  if (closed_) return channel_status::closed;
  if (count_ == cap_ && !has_receiver()) return channel_status::would_block;
  T copy(v);
  return offer(copy);
}

template <class T>
channel_status channel<T>::send_until(T&& v, time_point deadline) {
  return send_wait(v, deadline);
}

template <class T>
channel_status channel<T>::send_until(const T& v, time_point deadline) {
  T copy(v);
  return send_wait(copy, deadline);
}

// Declared inline: GCC inlines it into a receiving loop, as it did when recv() was a call to
// recv_wait() (tools/count: stream, 101 to 81 instructions an item).
template <class T>
inline std::optional<T> channel<T>::recv() {
  std::optional<T> out;
  detail::task_ctl* self = detail::enter_blocking_call();
  if (take(out) == channel_status::would_block) park_on(recvq_, self, &out, recv_why_);
  return out;
}

template <class T>
recv_result<T> channel<T>::try_recv() {
  recv_result<T> r;
  r.status = take(r.value);
  return r;
}

template <class T>
recv_result<T> channel<T>::recv_until(time_point deadline) {
  recv_result<T> r;
  r.status = recv_wait(r.value, deadline);
  return r;
}

}  // namespace gr
