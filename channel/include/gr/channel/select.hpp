// gr/channel/select.hpp: Go's select over channel operations.
//
//   std::size_t fired = gr::select(
//       gr::recv_case(results, [&](std::optional<int> v) { if (v) total += *v; }),
//       gr::send_case(jobs, next_job, [&] { ++sent; }),
//       gr::timeout_case(100ms, [&] { std::puts("slow"); }));
//
// A select waits on all its cases at once and completes exactly one:
//   - It first looks at the cases in random order and completes the first one that can proceed,
//     so among several ready cases each is equally likely (Go). select_options{.ordered = true}
//     takes the first ready case in argument order instead.
//   - If none can, a default_case fires at once if there is one. Otherwise the select registers a
//     waiter on every channel (in random order, so a counterpart that arrives later is equally
//     likely to complete any of them) and parks once — it never polls. The first counterpart to
//     arrive completes its case; before select returns, every other registration is removed.
//   - A timeout_case / deadline_case fires when its time passes first (one per select).
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
#include <gr/sched/clock.hpp>

#include <array>
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

enum class case_kind : std::uint8_t { recv, send, timeout, default_ };

struct no_handler {};

// case_ops: what the select algorithm needs of one case, whatever its types.
struct case_ops {
  case_kind kind;
  chan_core* (*channel)(void* c) noexcept;
  bool (*poll)(void* c);                   // complete now if possible (send on closed: throws)
  void (*arm)(void* c, chan_node& n);      // fill the node's value pointer
  void (*fire)(void* c, const chan_node* n);  // run the handler after completion (n null: polled)
  time_point (*deadline)(void* c) noexcept;
};

struct case_ref {
  void* obj;
  const case_ops* ops;
};

// select_shape: the kinds of a select's cases, known at compile time: where its default and
// timeout cases are (n: none) and how many of each there are (more than one is an error).
struct select_shape {
  std::uint32_t deflt;
  std::uint32_t timeout;
  std::uint32_t defaults = 0;
  std::uint32_t timeouts = 0;
};

// select_run: the algorithm, shared by every select (see select.hpp's comment). `order` comes in
// as 0, 1, ..., n - 1.
std::size_t select_run(case_ref* cases, std::size_t n, std::uint32_t* order, chan_node* nodes,
                       const select_options& opts, select_shape shape);

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
template <class T, class F = detail::no_handler>
struct recv_case_t {
  channel<T>* ch;
  F handler;
  std::optional<T> slot{};

  static constexpr detail::case_ops ops{
      detail::case_kind::recv,
      [](void* c) noexcept -> detail::chan_core* { return static_cast<recv_case_t*>(c)->ch; },
      [](void* c) -> bool {
        auto* self = static_cast<recv_case_t*>(c);
        return self->ch->take(self->slot) != channel_status::would_block;
      },
      [](void* c, detail::chan_node& n) {
        auto* self = static_cast<recv_case_t*>(c);
        n.value = &self->slot;
        self->ch->enqueue_recv(n);
      },
      [](void* c, const detail::chan_node*) {
        auto* self = static_cast<recv_case_t*>(c);
        detail::call_handler(self->handler, std::move(self->slot));
      },
      [](void*) noexcept { return time_point::max(); }};
};

// send_case: send `value` on `ch`; `handler()` runs if it fires. An rvalue is moved from only if
// this case fires; an lvalue is copied into the case when the case is made.
template <class T, class F = detail::no_handler>
struct send_case_t {
  channel<T>* ch;
  T* value;
  F handler;
  std::optional<T> copy{};  // holds the copy of an lvalue argument

  static constexpr detail::case_ops ops{
      detail::case_kind::send,
      [](void* c) noexcept -> detail::chan_core* { return static_cast<send_case_t*>(c)->ch; },
      [](void* c) -> bool {
        auto* self = static_cast<send_case_t*>(c);
        const channel_status s = self->ch->offer(*self->value);
        if (s == channel_status::closed) self->ch->throw_send_closed();
        return s == channel_status::ok;
      },
      [](void* c, detail::chan_node& n) {
        auto* self = static_cast<send_case_t*>(c);
        n.value = self->value;
        self->ch->enqueue_send(n);
      },
      [](void* c, const detail::chan_node* n) {
        auto* self = static_cast<send_case_t*>(c);
        // Closed while the select waited (the channel may be gone already), or moving the value
        // into the buffer threw (see channel.hpp): the value was not sent.
        if (n && (n->closed || n->error)) {
          if (n->error) std::rethrow_exception(n->error);
          self->ch->throw_send_closed();
        }
        detail::call_handler(self->handler);
      },
      [](void*) noexcept { return time_point::max(); }};
};

// timeout_case / deadline_case: fire when the time passes before any other case.
template <class F = detail::no_handler>
struct deadline_case_t {
  time_point when;
  F handler;

  static constexpr detail::case_ops ops{
      detail::case_kind::timeout, [](void*) noexcept -> detail::chan_core* { return nullptr; },
      [](void*) -> bool { return false; }, [](void*, detail::chan_node&) {},
      [](void* c, const detail::chan_node*) { detail::call_handler(static_cast<deadline_case_t*>(c)->handler); },
      [](void* c) noexcept { return static_cast<deadline_case_t*>(c)->when; }};
};

// default_case: fires at once when no other case is ready.
template <class F = detail::no_handler>
struct default_case_t {
  F handler;

  static constexpr detail::case_ops ops{
      detail::case_kind::default_, [](void*) noexcept -> detail::chan_core* { return nullptr; },
      [](void*) -> bool { return false; }, [](void*, detail::chan_node&) {},
      [](void* c, const detail::chan_node*) { detail::call_handler(static_cast<default_case_t*>(c)->handler); },
      [](void*) noexcept { return time_point::max(); }};
};

template <class T, class F = detail::no_handler>
recv_case_t<T, F> recv_case(channel<T>& ch, F handler = {}) {
  return {&ch, std::move(handler)};
}

// Make cases inside the select() call: a case points at its arguments until that call ends.
template <class T, class F = detail::no_handler>
send_case_t<T, F> send_case(channel<T>& ch, std::type_identity_t<T>&& value, F handler = {}) {
  return {&ch, &value, std::move(handler)};
}

template <class T, class F = detail::no_handler>
send_case_t<T, F> send_case(channel<T>& ch, const std::type_identity_t<T>& value, F handler = {}) {
  send_case_t<T, F> c{&ch, nullptr, std::move(handler), std::optional<T>(value)};
  return c;  // value is pointed at by select() (the copy lives in the case object)
}

template <class F = detail::no_handler>
deadline_case_t<F> deadline_case(time_point when, F handler = {}) {
  return {when, std::move(handler)};
}

template <class Rep, class Period, class F = detail::no_handler>
deadline_case_t<F> timeout_case(std::chrono::duration<Rep, Period> d, F handler = {}) {
  return {detail::sched_now() + std::chrono::ceil<duration>(d), std::move(handler)};
}

template <class F = detail::no_handler>
default_case_t<F> default_case(F handler = {}) {
  return {std::move(handler)};
}

namespace detail {
template <class C>
void bind_case(C& c) {
  if constexpr (requires { c.copy; c.value; }) {
    if (c.copy) c.value = &*c.copy;
  }
}

template <class... Cases>
constexpr select_shape shape_of() {
  constexpr std::uint32_t n = sizeof...(Cases);
  const case_kind kinds[] = {std::remove_cvref_t<Cases>::ops.kind..., case_kind::recv};
  select_shape s{n, n};
  for (std::uint32_t i = 0; i < n; ++i) {
    if (kinds[i] == case_kind::default_) {
      if (s.defaults++ == 0) s.deflt = i;
    } else if (kinds[i] == case_kind::timeout) {
      if (s.timeouts++ == 0) s.timeout = i;
    }
  }
  return s;
}

template <std::size_t N>
constexpr std::array<std::uint32_t, N> identity_order() {
  std::array<std::uint32_t, N> a{};
  for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<std::uint32_t>(i);
  return a;
}
}  // namespace detail

// select: see the top of this file. Returns the index of the case that completed.
template <class... Cases>
std::size_t select(const select_options& opts, Cases&&... cases) {
  constexpr std::size_t n = sizeof...(Cases);
  (detail::bind_case(cases), ...);
  std::array<detail::case_ref, n == 0 ? 1 : n> refs{detail::case_ref{&cases, &std::remove_cvref_t<Cases>::ops}...};
  std::array<std::uint32_t, n == 0 ? 1 : n> order = detail::identity_order<n == 0 ? 1 : n>();
  std::array<detail::chan_node, n == 0 ? 1 : n> nodes;
  constexpr detail::select_shape shape = detail::shape_of<Cases...>();
  return detail::select_run(refs.data(), n, order.data(), nodes.data(), opts, shape);
}

template <class First, class... Cases>
  requires(!std::is_same_v<std::remove_cvref_t<First>, select_options>)
std::size_t select(First&& first, Cases&&... cases) {
  static const select_options defaults{};
  return select(defaults, std::forward<First>(first), std::forward<Cases>(cases)...);
}

inline std::size_t select() {
  static const select_options defaults{};
  return select(defaults);
}

}  // namespace gr
