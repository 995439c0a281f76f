// A T whose move constructor throws: the channel operation that moved throws (or, for the move a
// receive makes into a full buffer on a blocked sender's behalf, that sender's send does), and
// the channel stays consistent: no waiter is stranded or fired without its value, no value is
// lost, doubled or destroyed twice, and every later send and receive works.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <optional>
#include <stdexcept>
#include <type_traits>
#include <unordered_set>
#include <vector>

using gr::channel_status;
using namespace gr_test;

namespace {

struct move_failed : std::runtime_error {
  move_failed() : std::runtime_error("fragile: move failed") {}
};

// fragile: a move-only value whose moves throw on demand. Counting the moves of one value (from
// object to object) from 1: after `after` moves succeed, the next `fail_moves` throw move_failed
// and leave the value as it was; later moves succeed. Every live fragile is registered, so
// moving from or destroying a dead one (a buffer slot destroyed twice, or read after its
// destruction) fails a check, and count() says how many are alive. A moved-from fragile reads
// id -1.
class fragile {
public:
  explicit fragile(int id, int fail_moves = 0, int after = 0) : id_(id), fail_(fail_moves), after_(after) {
    live().insert(this);
  }
  fragile(fragile&& o) noexcept(false) : id_(take_id(o)), fail_(o.fail_), after_(o.after_ > 0 ? o.after_ - 1 : 0) {
    live().insert(this);
    o.id_ = -1;
  }
  fragile& operator=(fragile&&) = delete;  // the channel layer only ever move-constructs a T
  ~fragile() { CHECK_MESSAGE(live().erase(this) == 1, "a fragile destroyed twice"); }

  int id() const noexcept { return id_; }
  static std::size_t count() { return live().size(); }

private:
  static std::unordered_set<const fragile*>& live() {
    static std::unordered_set<const fragile*> objects;
    return objects;
  }
  static int take_id(fragile& o) {
    CHECK_MESSAGE(live().count(&o) == 1, "a fragile moved from after its destruction");
    if (o.after_ == 0 && o.fail_ > 0) {
      --o.fail_;
      throw move_failed();
    }
    return o.id_;
  }

  int id_;
  int fail_;   // moves still to fail, once `after_` is 0
  int after_;  // moves still to succeed before those
};

static_assert(!std::is_nothrow_move_constructible_v<fragile>);

// fill_fragile: buffers fragile 0, 1, ..., n - 1; the first fails its next `first_fails` moves
// out of the buffer.
void fill_fragile(gr::channel<fragile>& c, int n, int first_fails) {
  for (int i = 0; i < n; ++i)
    REQUIRE(c.try_send(fragile(i, i == 0 ? first_fails : 0, 1)) == channel_status::ok);
}

// drain: the ids of every value `c` hands out without waiting, in order.
std::vector<int> drain(gr::channel<fragile>& c) {
  std::vector<int> ids;
  for (;;) {
    gr::recv_result<fragile> r = c.try_recv();
    if (!r) return ids;
    ids.push_back(r.value->id());
  }
}

// range: first, first + 1, ..., last - 1, then the values of `tail`.
std::vector<int> range(int first, int last, std::vector<int> tail = {}) {
  std::vector<int> v;
  for (int i = first; i < last; ++i) v.push_back(i);
  v.insert(v.end(), tail.begin(), tail.end());
  return v;
}

// id_of: the id received, or `closed` for nullopt.
constexpr int closed = -100;
int id_of(const std::optional<fragile>& v) { return v ? v->id() : closed; }

enum class send_form { send, send_for, select };

// send_by: sends `v` on `c` with `form`.
void send_by(send_form form, gr::channel<fragile>& c, fragile&& v) {
  switch (form) {
    case send_form::send: c.send(std::move(v)); break;
    case send_form::send_for: {
      const channel_status s = c.send_for(std::move(v), 1h);  // (a CHECK would swallow a throw)
      CHECK(s == channel_status::ok);
      break;
    }
    case send_form::select: gr::select(gr::send_case(c, std::move(v))); break;
  }
}

}  // namespace

#define GR_TEST_BUFFERED gr_test::cap<1>, gr_test::cap<2>, gr_test::cap<64>

TEST_SUITE("channel.throwing_move") {
  TEST_CASE_TEMPLATE("a send whose move throws leaves the waiting receiver waiting for the next value", C,
                     GR_TEST_CAPACITIES) {
    {
      gr::channel<fragile> c(C::value, "fragile");
      int got = -2;
      auto receiver = gr::spawn([&] { got = id_of(c.recv()); });
      gr::yield();  // the receiver waits
      fragile v(1, 1);
      SUBCASE("send") { CHECK_THROWS_AS(c.send(std::move(v)), move_failed); }
      SUBCASE("try_send") { CHECK_THROWS_AS((void)c.try_send(std::move(v)), move_failed); }
      SUBCASE("send_for") { CHECK_THROWS_AS((void)c.send_for(std::move(v), 1h), move_failed); }
      SUBCASE("a select send case") { CHECK_THROWS_AS(gr::select(gr::send_case(c, std::move(v))), move_failed); }
      CHECK(v.id() == 1);  // not sent: still ours
      CHECK(c.size() == 0);
      CHECK(got == -2);
      CHECK(c.try_send(std::move(v)) == channel_status::ok);  // the receiver is still there to take it
      receiver.join();
      CHECK(got == 1);
      CHECK(c.size() == 0);
    }
    CHECK(fragile::count() == 0);
  }

  TEST_CASE_TEMPLATE("a recv whose move throws leaves the value and the blocked sender for the next recv", C,
                     GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    {
      gr::channel<fragile> c(C::value, "fragile");
      fill_fragile(c, n, 1);  // the oldest value fails its next move
      bool sent = false;
      auto sender = gr::spawn([&] {
        c.send(fragile(100, n == 0 ? 1 : 0));  // unbuffered: this value fails instead
        sent = true;
      });
      gr::yield();  // the sender waits: the buffer is full
      SUBCASE("recv") { CHECK_THROWS_AS((void)c.recv(), move_failed); }
      SUBCASE("try_recv") { CHECK_THROWS_AS((void)c.try_recv(), move_failed); }
      SUBCASE("recv_for") { CHECK_THROWS_AS((void)c.recv_for(1h), move_failed); }
      SUBCASE("a select recv case") { CHECK_THROWS_AS(gr::select(gr::recv_case(c)), move_failed); }
      CHECK(c.size() == C::value);
      CHECK_FALSE(sent);
      std::vector<int> got;
      for (int i = 0; i <= n; ++i) got.push_back(id_of(c.recv()));  // the last one from the sender
      CHECK(got == range(0, n, {100}));
      sender.join();
      CHECK(sent);
      CHECK(drain(c).empty());
    }
    CHECK(fragile::count() == 0);
  }

  TEST_CASE_TEMPLATE("a recv that frees a slot of a full buffer hands a failed move to the blocked sender", C,
                     GR_TEST_BUFFERED) {
    constexpr int n = static_cast<int>(C::value);
    send_form form = send_form::send;
    SUBCASE("blocked in send") { form = send_form::send; }
    SUBCASE("blocked in send_for") { form = send_form::send_for; }
    SUBCASE("blocked in a select send case") { form = send_form::select; }
    {
      gr::channel<fragile> c(C::value, "fragile");
      fill_fragile(c, n, 0);
      bool first_sent = false, first_threw = false, second_sent = false;
      auto first = gr::spawn([&] {
        fragile v(100, 1);
        try {
          send_by(form, c, std::move(v));
          first_sent = true;
        } catch (const move_failed&) {
          first_threw = true;
        }
        CHECK(v.id() == 100);  // not sent: still the sender's
      });
      auto second = gr::spawn([&] {
        send_by(form, c, fragile(101));
        second_sent = true;
      });
      gr::yield();  // both senders wait: the buffer is full
      CHECK(id_of(c.recv()) == 0);  // the receive itself succeeds
      CHECK(c.size() == C::value);  // 100 failed to move in; 101 took the slot
      first.join();
      second.join();
      CHECK(first_threw);
      CHECK_FALSE(first_sent);
      CHECK(second_sent);
      CHECK(drain(c) == range(1, n, {101}));
      fill_fragile(c, n, 0);  // and the channel goes on working
      CHECK(drain(c) == range(0, n));
    }
    CHECK(fragile::count() == 0);
  }

  TEST_CASE_TEMPLATE("a select waiting to receive is not fired by a send whose move throws", C, GR_TEST_CAPACITIES) {
    {
      gr::channel<fragile> a(C::value, "a"), b(C::value, "b");
      int fired = -1, got = -2;
      auto selector = gr::spawn([&] {
        fired = static_cast<int>(gr::select(gr::recv_case(a, [&](std::optional<fragile> v) { got = id_of(v); }),
                                            gr::recv_case(b, [&](std::optional<fragile> v) { got = id_of(v); })));
      });
      gr::yield();  // the select waits on both
      fragile v(1, 1);
      CHECK_THROWS_AS(a.send(std::move(v)), move_failed);
      CHECK(fired == -1);
      CHECK(b.try_send(fragile(2)) == channel_status::ok);  // the select still waits on b
      selector.join();
      CHECK(fired == 1);
      CHECK(got == 2);
      // No registration of the select is left on a.
      if (C::value == 0) {
        CHECK(a.try_send(std::move(v)) == channel_status::would_block);
      } else {
        CHECK(a.try_send(std::move(v)) == channel_status::ok);
        CHECK(drain(a) == std::vector<int>{1});
      }
      CHECK(drain(b).empty());
    }
    CHECK(fragile::count() == 0);
  }

  TEST_CASE_TEMPLATE("a select waiting to send is not fired by a recv whose move throws", C, GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    {
      gr::channel<fragile> a(C::value, "a"), b(0, "b");
      fill_fragile(a, n, 1);  // the oldest value fails its next move
      int fired = -1;
      auto selector = gr::spawn([&] {
        fired = static_cast<int>(
            gr::select(gr::send_case(a, fragile(100, n == 0 ? 1 : 0)), gr::send_case(b, fragile(200))));
      });
      gr::yield();  // the select waits on both
      CHECK_THROWS_AS((void)a.recv(), move_failed);
      CHECK(fired == -1);
      CHECK(id_of(b.recv()) == 200);  // the select still waits on b
      selector.join();
      CHECK(fired == 1);
      CHECK(drain(a) == range(0, n));  // 100 was not sent, and nothing of the select is left on a
      CHECK(drain(b).empty());
    }
    CHECK(fragile::count() == 0);
  }

  TEST_CASE_TEMPLATE("with moves failing on both sides every value arrives once and in order", C,
                     GR_TEST_CAPACITIES) {
    constexpr int count = 300;
    int armed = 0;  // moves set to fail
    {
      gr::channel<fragile> c(C::value, "stream");
      int send_failures = 0, recv_failures = 0;
      auto producer = gr::spawn([&] {
        for (int i = 0; i < count; ++i) {
          const int fails = i % 5 == 0 ? (i % 35 == 0 ? 2 : 1) : 0;
          armed += fails;
          fragile v(i, fails);
          for (;;) {  // a send whose move failed sent nothing: send the same value again
            try {
              send_by(static_cast<send_form>(i % 3), c, std::move(v));
              break;
            } catch (const move_failed&) {
              ++send_failures;
            }
          }
          if (i % 4 == 0) gr::yield();
        }
        c.close();
      });
      std::vector<int> got;
      for (int k = 0;; ++k) {
        int id = -2;
        try {
          switch (k % 3) {
            case 0: id = id_of(c.recv()); break;
            case 1: {
              gr::recv_result<fragile> r = c.recv_for(1h);
              id = r.status == channel_status::closed ? closed : id_of(r.value);
              break;
            }
            case 2: gr::select(gr::recv_case(c, [&](std::optional<fragile> v) { id = id_of(v); })); break;
          }
        } catch (const move_failed&) {
          ++recv_failures;  // nothing was taken: receive again
          continue;
        }
        if (id == closed) break;
        got.push_back(id);
        if (k % 5 == 0) gr::yield();
      }
      producer.join();
      CHECK(got == range(0, count));
      CHECK(send_failures + recv_failures == armed);  // every armed move failed once, no more
      MESSAGE("failed moves: ", send_failures, " on the sending side, ", recv_failures, " on the receiving side");
    }
    CHECK(fragile::count() == 0);
  }
}
