// gr/channel/detail/select_impl.hpp: select()'s template body (see select.hpp).
//
// The ready pass runs here, where the types of the cases are known, so it makes no indirect call,
// builds no wait node and draws no random number unless two or more cases are ready:
//   - One channel case, or the ordered mode: try the cases in argument order; the first one that
//     completes wins.
//   - Otherwise ask every channel case whether it is ready (a few loads each; nothing changes),
//     then complete one of the k ready ones, picked with one uniform draw in [0, k) (none when
//     k == 1). Each ready case is as likely as with Go's shuffle-then-poll, for one draw instead of
//     n - 1, and one pass over the cases.
// A ready case stays ready until it is completed: nothing runs in between (one thread), and
// ready() asks exactly what take() / offer() would find. It keeps the waiter it found (the
// channel's live front sender / receiver), which complete() hands to take_from() / offer_to(),
// so the chosen case does not search its queue again. Asking another case cannot change it:
// that only drops stale nodes (of fired selects), and a live waiter stays live until claimed.
// Only when nothing is ready and there is no default case does select build its wait nodes and
// call the parking half that every select shares (select_park, channel.cpp).
#pragma once

#include <gr/channel/select.hpp>
#include <gr/runtime/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace gr {
namespace detail {

template <class C>
inline constexpr bool is_channel_case = C::ops.kind <= case_kind::send;

// count_of_kind / first_of_kind: how many cases are of kind `k`; the index of the first one
// (sizeof...(Cases) if there is none).
template <class... Cases>
constexpr std::size_t count_of_kind(case_kind k) noexcept {
  const case_kind kinds[] = {Cases::ops.kind..., case_kind::recv};
  std::size_t count = 0;
  for (std::size_t i = 0; i < sizeof...(Cases); ++i) count += kinds[i] == k;
  return count;
}

template <class... Cases>
constexpr std::size_t first_of_kind(case_kind k) noexcept {
  const case_kind kinds[] = {Cases::ops.kind..., case_kind::recv};
  for (std::size_t i = 0; i < sizeof...(Cases); ++i)
    if (kinds[i] == k) return i;
  return sizeof...(Cases);
}

template <class C>
void bind_case(C& c) noexcept {
  if constexpr (requires { c.copy; c.value; }) {
    if (c.copy) c.value = &*c.copy;
  }
}

// try_complete: completes case `c` if it is ready (ordered mode, or a single channel case).
template <class C>
bool try_complete(C& c) {
  if constexpr (is_channel_case<C>) {
    if (!c.ready()) return false;
    c.complete();
    return true;
  } else {
    return false;
  }
}

// complete_ready: completes case `c`, which the ready pass found ready.
template <class C>
void complete_ready(C& c) {
  if constexpr (is_channel_case<C>) c.complete();
}

// note_ready: appends case I to `ready` if it is ready (branch-free: the slot past the last ready
// case is scratch).
template <std::size_t I, class C>
void note_ready(C& c, std::uint32_t* ready, std::uint32_t& k) noexcept {
  if constexpr (is_channel_case<C>) {
    ready[k] = static_cast<std::uint32_t>(I);
    k += c.ready() ? 1 : 0;
  }
}

template <std::size_t I, std::size_t D, class C>
void fire_if(C& c) {
  if constexpr (I == D) call_handler(c.handler);
}

// earliest_deadline: the timeout case that fires first, if case I is one and is earlier than
// the earliest so far (a tie keeps the earlier argument). A timeout that never comes
// (time_point::max(), hours::max()) is never the earliest: the select parks with no timer.
template <std::size_t I, class C>
void earliest_deadline(const C& c, time_point& deadline, std::size_t& index) noexcept {
  if constexpr (C::ops.kind == case_kind::timeout) {
    if (c.when < deadline) {
      deadline = c.when;
      index = I;
    }
  }
}

// select_wait: the wait nodes live in this frame, which only a select that parks enters.
template <std::size_t... I, class... Cases>
[[gnu::noinline]] std::size_t select_wait(const select_options* opts, task_ctl* self, std::index_sequence<I...>,
                                          Cases&... cases) {
  constexpr std::size_t n = sizeof...(Cases), slots = n == 0 ? 1 : n;
  time_point deadline = time_point::max();
  std::size_t timeout = n;  // none
  (earliest_deadline<I>(cases, deadline, timeout), ...);
  const std::array<case_ref, slots> refs{cases.ref()...};
  std::array<std::uint32_t, slots> order;
  std::array<chan_node, slots> nodes;
  return select_park(refs.data(), n, order.data(), nodes.data(), opts, timeout, deadline, self);
}

template <std::size_t... I, class... Cases>
std::size_t select_impl(const select_options* opts, std::index_sequence<I...>, Cases&... cases) {
  constexpr std::size_t channels = count_of_kind<Cases...>(case_kind::recv) + count_of_kind<Cases...>(case_kind::send);
  constexpr std::size_t defaults = count_of_kind<Cases...>(case_kind::default_);
  static_assert(defaults <= 1, "gr::select: more than one default_case (Go: multiple defaults in select)");
  task_ctl* const self = enter_blocking_call();
  (bind_case(cases), ...);

  if constexpr (channels > 0) {
    if (channels == 1 || (opts && opts->ordered)) {
      std::size_t fired = 0;
      if (((try_complete(cases) && (fired = I, true)) || ...)) return fired;
    } else {
      std::uint32_t ready[channels];
      std::uint32_t k = 0;
      (note_ready<I>(cases, ready, k), ...);
      if (k != 0) {
        const std::uint32_t i = ready[k == 1 ? 0 : random_below(k)];
        (void)((I == i && (complete_ready(cases), true)) || ...);
        return i;
      }
    }
  }
  if constexpr (defaults == 1) {
    constexpr std::size_t d = first_of_kind<Cases...>(case_kind::default_);
    (fire_if<I, d>(cases), ...);
    return d;
  } else {
    return select_wait(opts, self, std::index_sequence<I...>{}, cases...);
  }
}

}  // namespace detail

namespace detail {
// not_a_kept_borrowing_case: a send_case made from an rvalue points at it, and a temporary dies at
// the end of the statement that made the case: passed to select() by name (an lvalue), it would
// send a dead object. Refused whatever the rvalue was (a std::move(v) of a live v too: the case
// cannot tell); std::move of the kept case itself gets past this check, as any cast would.
template <class Arg>
constexpr bool not_a_kept_borrowing_case() {
  if constexpr (requires { std::remove_cvref_t<Arg>::borrows_value; })
    return !(std::remove_cvref_t<Arg>::borrows_value && std::is_lvalue_reference_v<Arg>);
  else
    return true;
}

// case_arguments_ok: what check_case_arguments asserts, as a value: select() instantiates nothing
// more when it is false, so the assertion's sentence is the only error.
template <class... Args>
constexpr bool case_arguments_ok() {
  return (!std::is_same_v<std::remove_cvref_t<Args>, select_options> && ...) &&
         (not_a_kept_borrowing_case<Args>() && ...);
}

template <class... Args>
constexpr void check_case_arguments() {
  static_assert((!std::is_same_v<std::remove_cvref_t<Args>, select_options> && ...),
                "gr::select: select_options must be the first argument (gr::select(gr::select_options{...}, "
                "cases...))");
  static_assert((not_a_kept_borrowing_case<Args>() && ...),
                "gr::select: a send_case of an rvalue is passed by name: the case points at that rvalue, which a "
                "temporary no longer is by now. Make the case inside the select() call (send_case(ch, "
                "std::move(v)) there), or make it from an lvalue (which is copied into the case)");
}
}  // namespace detail

template <class... Cases>
std::size_t select(const select_options& opts, Cases&&... cases) {
  detail::check_case_arguments<Cases...>();
  if constexpr (detail::case_arguments_ok<Cases...>())  // else only the assertion's one sentence
    return detail::select_impl(&opts, std::index_sequence_for<Cases...>{}, cases...);
  else
    return 0;
}

template <class First, class... Cases>
  requires(!std::is_same_v<std::remove_cvref_t<First>, select_options>)
std::size_t select(First&& first, Cases&&... cases) {
  detail::check_case_arguments<First, Cases...>();
  if constexpr (detail::case_arguments_ok<First, Cases...>())
    return detail::select_impl(nullptr, std::index_sequence_for<First, Cases...>{}, first, cases...);
  else
    return 0;
}

inline std::size_t select() { return detail::select_impl(nullptr, std::index_sequence<>{}); }

}  // namespace gr
