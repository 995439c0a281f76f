// The parts of channels and select that do not depend on the value type.
//
// Invariants of select (Go's selectgo; the ready pass is select_impl.hpp's, the rest select_park's):
//   - The ready pass completes at most one case and registers nothing.
//   - select_park registers one node per channel case, all sharing one select_state; the first
//     counterpart to take one of them marks the state fired, so every other node is stale and
//     skipped by every queue (chan_core::live_front).
//   - Before select_park returns or throws, none of its nodes is linked in any queue.
//   - A counterpart fires a select only once the case's value has moved (a recv node's slot is
//     filled; a send node's value is taken, or its error set): a move that throws fires nothing.
#include <gr/channel/detail/chan_core.hpp>
#include <gr/channel/errors.hpp>
#include <gr/channel/select.hpp>

#include <fmt/format.h>

#include <chrono>

namespace gr {

const char* to_string(channel_status s) noexcept {
  switch (s) {
    case channel_status::ok: return "ok";
    case channel_status::closed: return "closed";
    case channel_status::would_block: return "would_block";
    case channel_status::timeout: return "timeout";
  }
  return "?";
}

namespace detail {

chan_core::~chan_core() {
  if (live_front(recvq_) || live_front(sendq_)) {
    if (shutting_down()) {  // its waiters are being unwound with the rest of the scheduler's tasks
      // They stay blocked until then, and what a plain send or recv waits on is ours
      // (send_why_ / recv_why_): no report or trace may read it once we are gone.
      for (wait_queue* q : {&recvq_, &sendq_}) {
        while (wait_node* n = q->pop_front())
          if (n->task->waiting == &send_why_ || n->task->waiting == &recv_why_) n->task->waiting = nullptr;
      }
      return;
    }
    std::string msg = fmt::format("{} destroyed while tasks are blocked on it:", label());
    try {
      for (wait_queue* q : {&recvq_, &sendq_})
        for (const wait_node* n = q->front(); n; n = n->next)
          if (const auto* c = static_cast<const chan_node*>(n); !c->sel || !c->sel->fired)
            msg += "\n  " + describe_waiting_task(*n->task);
      msg += "\nclose it, or let the tasks finish, before it is destroyed (senders that may outlive their "
             "receiver need room in it: a capacity of one slot per sender)";
    } catch (...) {  // no memory for the list: the first line says enough
    }
    fatal(msg);
  }
}

std::string chan_core::label() const {
  return name_.empty() ? fmt::format("channel {}", static_cast<const void*>(this)) : fmt::format("channel '{}'", name_);
}

void chan_core::throw_closed(const char* op) const {
  if (std::string_view(op) == "close") throw channel_closed(fmt::format("gr::channel::close: {} is already closed", label()));
  throw channel_closed(fmt::format("gr::channel::{}: {} is closed", op, label()));
}

void chan_core::throw_capacity(std::size_t value_size) const {
  // cap_ as signed too: a huge capacity is most often a negative count converted to size_t.
  throw error(fmt::format("gr::channel: capacity {} (as a signed number, {}) for {} is more than a buffer of "
                          "{}-byte values can hold",
                          cap_, static_cast<std::ptrdiff_t>(cap_), label(), value_size));
}

void chan_core::close_core() {
  if (closed_) throw_closed("close");
  closed_ = true;
  while (chan_node* n = take_waiter(recvq_)) {
    n->closed = true;  // receivers: the buffer is empty (they wait only then): nullopt
    complete(n);
  }
  while (chan_node* n = take_waiter(sendq_)) {
    n->closed = true;  // senders: their value was not sent
    n->error = std::make_exception_ptr(
        channel_closed(fmt::format("gr::channel::send: {} was closed while the send waited", label())));
    complete(n);
  }
}

namespace {
// park_outcome: what a channel operation parked on `me` in `q` reports once park returned `r`
// (see park_on).
inline channel_status park_outcome(wait_queue& q, chan_node& me, wake_reason r, bool throw_if_closed) {
  if (me.signaled) {
    // Its completer unlinked it (claim): the node's destructor need not look.
    GR_DEBUG_ASSERT(!me.linked(), "a completed channel waiter is still queued");
    if (me.linked()) __builtin_unreachable();
    if (me.closed) {
      if (throw_if_closed && me.error) std::rethrow_exception(std::move(me.error));
      return channel_status::closed;
    }
    if (me.error) [[unlikely]]  // a receiver failed to move our value into the buffer: not sent
      std::rethrow_exception(me.error);
    return channel_status::ok;
  }
  q.remove(me);
  raise_if_interrupted(r);
  return channel_status::timeout;
}
}  // namespace

// Flattened: under LTO the scheduler's park (pick the next task, switch) is inlined here, one
// stack frame and one call fewer on every blocking send and receive (tools/count: 306 to 297
// instructions a ping-pong message, when it was first flattened). No deadline: a blocking send
// or receive does not pay for the timed forms' (park_on_until).
[[gnu::flatten]]
channel_status chan_core::park_on(wait_queue& q, task_ctl* self, void* value, const wait_reason& why,
                                  bool throw_if_closed) {
  chan_node me{self};
  me.value = value;
  q.push_back(me);
  return park_outcome(q, me, park(why), throw_if_closed);
}

channel_status chan_core::park_on_until(wait_queue& q, task_ctl* self, void* value, const wait_reason& why,
                                        time_point deadline) {
  chan_node me{self};
  me.value = value;
  q.push_back(me);
  return park_outcome(q, me, park_until(why, deadline), false);
}

namespace {

// A fast per-thread generator for select's random choices (xorshift64*): the pick among ready
// cases, the order of registration.
thread_local std::uint64_t tls_rng __attribute__((tls_model("initial-exec"))) = 0;

std::uint32_t next_random() noexcept {
  std::uint64_t x = tls_rng;
  if (x == 0) [[unlikely]]
    x = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) |
        reinterpret_cast<std::uintptr_t>(&tls_rng) | 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  tls_rng = x;
  return static_cast<std::uint32_t>((x * 0x2545F4914F6CDD1Dull) >> 32);
}

void shuffle(std::uint32_t* order, std::size_t n) noexcept {
  for (std::size_t i = n; i > 1; --i) {
    const auto j = static_cast<std::size_t>((std::uint64_t{next_random()} * i) >> 32);
    std::swap(order[i - 1], order[j]);
  }
}

struct select_desc {
  const case_ref* cases;
  std::size_t n;
  const std::string* name;
};

std::string describe_select(const void* p) {
  const auto& d = *static_cast<const select_desc*>(p);
  std::string out;
  if (d.name && !d.name->empty()) out = fmt::format("'{}' ", *d.name);
  out += "over";
  if (d.n == 0) return out + " no cases (blocks forever)";
  for (std::size_t i = 0; i < d.n; ++i) {
    out += i ? ", " : " ";
    const case_ref& c = d.cases[i];
    switch (c.ops->kind) {
      case case_kind::recv: out += "recv on " + c.ch->label(); break;
      case case_kind::send: out += "send on " + c.ch->label(); break;
      case case_kind::timeout: out += "a timeout"; break;
      case case_kind::default_: out += "default"; break;
      case case_kind::nil: out += "a nil channel (never ready)"; break;
    }
  }
  return out;
}

}  // namespace

std::uint32_t random_below(std::uint32_t bound) noexcept {
  return static_cast<std::uint32_t>((std::uint64_t{next_random()} * bound) >> 32);
}

std::size_t select_park(const case_ref* cases, std::size_t n, std::uint32_t* order, chan_node* nodes,
                        const select_options* opts, std::size_t timeout, time_point deadline, task_ctl* self) {
  // Register on every channel at once, in random order (unless ordered): a counterpart that
  // arrives later is then equally likely to complete any case, even two on the same channel.
  for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
  if (!opts || !opts->ordered) shuffle(order, n);
  select_state st;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = order[k];
    const case_kind kind = cases[i].ops->kind;
    if (kind > case_kind::send) continue;
    chan_node& node = nodes[i];
    node.task = self;
    node.value = cases[i].value;
    node.sel = &st;
    node.case_index = static_cast<std::uint32_t>(i);
    if (kind == case_kind::recv)
      cases[i].ch->enqueue_recv(node);
    else
      cases[i].ch->enqueue_send(node);
  }
  const select_desc desc{cases, n, opts ? &opts->name : nullptr};
  const wait_reason why{"select", nullptr, &desc, nullptr, &describe_select};
  const wake_reason r = timeout != n ? park_until(why, deadline) : park(why);
  // Unlink through each node's own queue pointer, never through its channel: once the select
  // has fired, a channel of another case may already be gone (its owner saw the select complete
  // and destroyed it; the destructor dropped our stale node from its queue).
  for (std::size_t i = 0; i < n; ++i)
    if (nodes[i].queue) nodes[i].queue->remove(nodes[i]);

  if (st.fired) {  // a case completed, even if a timeout or cancel came at the same time
    const std::size_t i = st.index;
    cases[i].ops->fire(cases[i].obj, &nodes[i]);
    return i;
  }
  raise_if_interrupted(r);
  GR_ASSERT(r == wake_reason::timeout && timeout != n, "select woke with no case fired and no timeout");
  cases[timeout].ops->fire(cases[timeout].obj, nullptr);
  return timeout;
}

}  // namespace detail
}  // namespace gr
