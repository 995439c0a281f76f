// gr/channel/select.hpp: Go's select over channel operations.
//
//   std::size_t fired = gr::select(
//       gr::recv_case(results, [&](std::optional<int> v) { if (v) total += *v; }),
//       gr::send_case(jobs, next_job, [&] { ++sent; }),
//       gr::timeout_case(100ms, [&] { std::puts("slow"); }));
//
// A select waits on all its cases at once and completes exactly one:
//   - It first finds the cases that can proceed and completes one of them, each as likely as
//     the others (Go). select_options{.ordered = true} takes the first ready case in argument
//     order instead.
//   - If none can, a default_case fires at once if there is one. Otherwise the select registers a
//     waiter on every channel (in random order, so a counterpart that arrives later is equally
//     likely to complete any of them) and parks once — it never polls. The first counterpart to
//     arrive completes its case; before select returns, every other registration is removed.
//   - A timeout_case / deadline_case fires when its time passes first. A select may have several
//     (Go's several time.After cases): the earliest fires, the first of equal ones. A timeout_case
//     reads the clock when it is made, in an order C++ leaves unspecified among a call's
//     arguments (GCC makes the last first): two of one duration need not tie; deadlines that
//     must tie are one time_point passed to deadline_case. One default_case at most (a second
//     does not compile).
//   - A closed channel is ready for a recv case (its handler gets std::nullopt once drained) and
//     makes a send case throw gr::channel_closed.
//   - The same channel may appear in several cases; a select never pairs its own send with its
//     own receive.
//   - With no case that can ever fire, the select blocks forever: a cancel wakes it
//     (gr::task_cancelled), and if nothing else can run, the main task gets gr::deadlock_error.
//   - If moving a case's value throws, select throws the exception and the channels stay
//     consistent; channel.hpp gives what each operation guarantees then.
// It returns the index of the completed case, after calling that case's handler (if given).
// Handlers run on the selecting task after the select is over, so they may block or select.
#pragma once

#include <gr/channel/channel.hpp>
#include <gr/channel/detail/chan_core.hpp>
#include <gr/runtime/error.hpp>
#include <gr/sched/clock.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace gr {

// select_options: `ordered` picks the first ready case in argument order instead of at random;
// `name` shows in deadlock reports and dumps.
struct select_options {
  bool ordered = false;
  std::string name{};
};

namespace detail {

// nil: a channel case on a null channel pointer (Go's nil channel), which never fires.
enum class case_kind : std::uint8_t { recv, send, timeout, default_, nil };

struct no_handler {};

// case_ops: a case's kind, and how the parking half of select runs its handler once it has
// completed (n: its node; null for a timeout). The ready pass calls each case's ready() and
// complete() directly: the types are known there.
struct case_ops {
  case_kind kind;
  void (*fire)(void* c, const chan_node* n);
};

// case_ref: one case as the parking half sees it: for a channel case, the channel and what its
// wait node points at (recv: the case's std::optional<T> slot; send: the T to send).
struct case_ref {
  void* obj;
  const case_ops* ops;
  chan_core* ch;
  void* value;
};

// nil_case_ops: what a channel case made on a null channel pointer refers to: a case that never
// fires, and that select_park registers nowhere.
inline constexpr case_ops nil_case_ops{case_kind::nil, [](void*, const chan_node*) {}};

// select_park: the parking half of select, shared by every select (see select.hpp's comment),
// for when no case was ready and there is no default: registers a node per channel case, parks
// (until `deadline` if there is a timeout case, index `timeout`; n: none), removes every node
// and fires the case that completed. `order` is scratch room for n indices. `opts` null: the
// defaults.
std::size_t select_park(const case_ref* cases, std::size_t n, std::uint32_t* order, chan_node* nodes,
                        const select_options* opts, std::size_t timeout, time_point deadline, task_ctl* self);

// random_below: uniform in [0, bound) (bound > 0), from a fast per-thread generator.
std::uint32_t random_below(std::uint32_t bound) noexcept;

template <class F, class... Args>
void call_handler(F& f, Args&&... args) {
  if constexpr (std::is_same_v<F, no_handler>) {
  } else if constexpr (std::is_invocable_v<F&, Args...>) {
    f(std::forward<Args>(args)...);
  } else {
    static_assert(std::is_invocable_v<F&>, "gr::select: a case handler must be callable with the case's value "
                                            "(recv: std::optional<T>) or with nothing");
    f();
  }
}

}  // namespace detail

// recv_case: receive from `ch`; `handler(std::optional<T>)` (or `handler()`) runs if it fires.
// `MaybeNil`: made from a channel pointer, which may be null (Go's nil channel: never ready).
template <class T, class F = detail::no_handler, bool MaybeNil = false>
struct recv_case_t {
  channel<T>* ch;
  F handler;
  std::optional<T> slot{};
  detail::chan_node* peer = nullptr;  // the sender ready() found

  // For select (detail). ready: would the receive complete now (a sender waits, a value is
  // buffered, or closed)? complete: completes it, found ready with nothing run since, and runs
  // the handler (ready() found everything take() would look for: it is not asked twice).
  bool ready() noexcept {
    if constexpr (MaybeNil) {
      if (!ch) return false;
    }
    peer = ch->live_sender();
    return ch->recv_ready(peer);
  }
  void complete() {
    [[maybe_unused]] const channel_status s = ch->take_from(slot, peer);
    GR_DEBUG_ASSERT(s != channel_status::would_block, "gr::select: a recv case found ready did not complete");
    detail::call_handler(handler, std::move(slot));
  }

  detail::case_ref ref() noexcept {
    if constexpr (MaybeNil) {
      if (!ch) return {this, &detail::nil_case_ops, nullptr, nullptr};
    }
    return {this, &ops, ch, &slot};
  }

  static constexpr detail::case_ops ops{detail::case_kind::recv, [](void* c, const detail::chan_node*) {
                                          auto* self = static_cast<recv_case_t*>(c);
                                          detail::call_handler(self->handler, std::move(self->slot));
                                        }};
};

// send_case: send `value` on `ch`; `handler()` runs if it fires. An rvalue is moved from only if
// this case fires; an lvalue is copied into the case when the case is made. `MaybeNil`: see
// recv_case_t. `Borrows`: made from an rvalue, whose address it keeps: select() accepts such a
// case only as a temporary made in its own call (the rvalue dies at the end of that call).
template <class T, class F = detail::no_handler, bool MaybeNil = false, bool Borrows = false>
struct send_case_t {
  channel<T>* ch;
  T* value;
  F handler;
  std::optional<T> copy{};            // holds the copy of an lvalue argument
  detail::chan_node* peer = nullptr;  // the receiver ready() found

  static constexpr bool borrows_value = Borrows;

  // For select (detail): see recv_case_t. A closed channel is ready, and complete() throws.
  bool ready() noexcept {
    if constexpr (MaybeNil) {
      if (!ch) return false;
    }
    peer = ch->live_receiver();
    return ch->send_ready(peer);
  }
  void complete() {
    const channel_status s = ch->offer_to(*value, peer);
    GR_DEBUG_ASSERT(s != channel_status::would_block, "gr::select: a send case found ready did not complete");
    if (s == channel_status::closed) [[unlikely]]
      ch->throw_send_closed();
    detail::call_handler(handler);
  }

  detail::case_ref ref() noexcept {
    if constexpr (MaybeNil) {
      if (!ch) return {this, &detail::nil_case_ops, nullptr, nullptr};
    }
    return {this, &ops, ch, value};
  }

  static constexpr detail::case_ops ops{detail::case_kind::send, [](void* c, const detail::chan_node* n) {
                                          auto* self = static_cast<send_case_t*>(c);
                                          // Closed while the select waited (the channel may be gone
                                          // already), or moving the value into the buffer threw
                                          // (see channel.hpp): the value was not sent.
                                          if (n->closed || n->error) {
                                            if (n->error) std::rethrow_exception(n->error);
                                            self->ch->throw_send_closed();
                                          }
                                          detail::call_handler(self->handler);
                                        }};
};

// timeout_case / deadline_case: fire when the time passes before any other case.
template <class F = detail::no_handler>
struct deadline_case_t {
  time_point when;
  F handler;

  detail::case_ref ref() noexcept { return {this, &ops, nullptr, nullptr}; }

  static constexpr detail::case_ops ops{detail::case_kind::timeout, [](void* c, const detail::chan_node*) {
                                          detail::call_handler(static_cast<deadline_case_t*>(c)->handler);
                                        }};
};

// default_case: fires at once when no other case is ready.
template <class F = detail::no_handler>
struct default_case_t {
  F handler;

  detail::case_ref ref() noexcept { return {this, &ops, nullptr, nullptr}; }

  // (select fires a default case itself: it never parks with one.)
  static constexpr detail::case_ops ops{detail::case_kind::default_, [](void*, const detail::chan_node*) {}};
};

template <class T, class F = detail::no_handler>
recv_case_t<T, F> recv_case(channel<T>& ch, F handler = {}) {
  return {&ch, std::move(handler)};
}

// Make cases inside the select() call: a case points at its arguments until that call ends (a
// send_case of an rvalue kept in a variable and passed to select() by name does not compile).
template <class T, class F = detail::no_handler>
send_case_t<T, F, false, true> send_case(channel<T>& ch, std::type_identity_t<T>&& value, F handler = {}) {
  return {&ch, &value, std::move(handler)};
}

template <class T, class F = detail::no_handler>
send_case_t<T, F> send_case(channel<T>& ch, const std::type_identity_t<T>& value, F handler = {}) {
  send_case_t<T, F> c{&ch, nullptr, std::move(handler), std::optional<T>(value)};
  return c;  // value is pointed at by select() (the copy lives in the case object)
}

// recv_case / send_case on a channel pointer: a null pointer is Go's nil channel, a case that is
// never ready and never fires. Set the pointer to null to switch a case off, e.g. once its
// channel is closed and drained:
//   gr::channel<int>* in = &a;
//   while (in || ...) gr::select(gr::recv_case(in, [&](std::optional<int> v) { if (!v) in = nullptr; }), ...);
template <class T, class F = detail::no_handler>
recv_case_t<T, F, true> recv_case(channel<T>* ch, F handler = {}) {
  return {ch, std::move(handler)};
}

template <class T, class F = detail::no_handler>
send_case_t<T, F, true, true> send_case(channel<T>* ch, std::type_identity_t<T>&& value, F handler = {}) {
  return {ch, &value, std::move(handler)};
}

template <class T, class F = detail::no_handler>
send_case_t<T, F, true> send_case(channel<T>* ch, const std::type_identity_t<T>& value, F handler = {}) {
  send_case_t<T, F, true> c{ch, nullptr, std::move(handler), std::optional<T>(value)};
  return c;
}

template <class F = detail::no_handler>
deadline_case_t<F> deadline_case(time_point when, F handler = {}) {
  return {when, std::move(handler)};
}

template <class Rep, class Period, class F = detail::no_handler>
deadline_case_t<F> timeout_case(std::chrono::duration<Rep, Period> d, F handler = {}) {
  return {detail::deadline_in(d), std::move(handler)};
}

template <class F = detail::no_handler>
default_case_t<F> default_case(F handler = {}) {
  return {std::move(handler)};
}

// select: see the top of this file. Returns the index of the case that completed.
template <class... Cases>
std::size_t select(const select_options& opts, Cases&&... cases);

template <class First, class... Cases>
  requires(!std::is_same_v<std::remove_cvref_t<First>, select_options>)
std::size_t select(First&& first, Cases&&... cases);

inline std::size_t select();

}  // namespace gr

#include <gr/channel/detail/select_impl.hpp>
