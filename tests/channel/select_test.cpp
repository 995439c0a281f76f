// select: which case completes, fairness, default and timeout cases, closed channels, the same
// channel in several cases, and that no registration outlives the select.
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using gr::channel_status;
using namespace gr_test;

TEST_SUITE("channel.select") {
  TEST_CASE_TEMPLATE("select completes a ready recv case and runs only its handler", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value);
    auto sender = gr::spawn([&] { b.send(7); });
    gr::yield();  // buffered, or the sender waits
    std::optional<int> got;
    bool other = false;
    const std::size_t i = gr::select(gr::recv_case(a, [&](std::optional<int>) { other = true; }),
                                     gr::recv_case(b, [&](std::optional<int> v) { got = v; }));
    CHECK(i == 1);
    CHECK(got == 7);
    CHECK_FALSE(other);
    sender.join();
    check_no_stale_receiver(a);
  }

  TEST_CASE_TEMPLATE("select completes a ready send case", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value);
    fill(a, C::value);  // a is full: not ready
    std::optional<int> got;
    auto receiver = gr::spawn([&] { got = b.recv(); });
    gr::yield();  // b has room, or a receiver waits
    bool fired = false;
    const std::size_t i = gr::select(gr::send_case(a, 1), gr::send_case(b, 2, [&] { fired = true; }));
    CHECK(i == 1);
    CHECK(fired);
    receiver.join();
    CHECK(got == 2);
    check_no_stale_sender(a, 0, static_cast<int>(C::value));
  }

  TEST_CASE_TEMPLATE("a parked select is completed by the first counterpart to arrive", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value), c(C::value);
    fill(c, C::value);  // c is full: a send case on it waits
    auto sender = gr::spawn([&] { b.send(42); });
    std::optional<int> got;
    // The select runs first (the sender is only queued), finds nothing ready and parks.
    const std::size_t i = gr::select(gr::recv_case(a), gr::recv_case(b, [&](std::optional<int> v) { got = v; }),
                                     gr::send_case(c, 9));
    CHECK(i == 1);
    CHECK(got == 42);
    sender.join();
    check_no_stale_receiver(a);
    check_no_stale_sender(c, 0, static_cast<int>(C::value));
  }

  TEST_CASE_TEMPLATE("a parked send case is completed by a receiver", C, GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> a(C::value), b(C::value);
    fill(a, C::value, 0);
    fill(b, C::value, 10);
    std::vector<int> got;
    auto receiver = gr::spawn([&] {
      for (int k = 0; k <= n; ++k) got.push_back(*b.recv());
    });
    const std::size_t i = gr::select(gr::send_case(a, 100), gr::send_case(b, 200));
    CHECK(i == 1);
    receiver.join();
    std::vector<int> expected;
    for (int k = 0; k < n; ++k) expected.push_back(10 + k);
    expected.push_back(200);
    CHECK(got == expected);
    check_no_stale_sender(a, 0, n);  // 100 never went in
    check_no_stale_sender(b, 0, 0);
  }

  TEST_CASE_TEMPLATE("select picks uniformly at random among ready recv cases", C, GR_TEST_CAPACITIES) {
    std::array<gr::channel<int>, 4> chans{gr::channel<int>(C::value), gr::channel<int>(C::value),
                                          gr::channel<int>(C::value), gr::channel<int>(C::value)};
    std::vector<gr::task> feeders;
    for (int k = 0; k < 4; ++k)
      feeders.push_back(gr::spawn([&, k] {
        try {
          for (;;) chans[k].send(k);
        } catch (const gr::channel_closed&) {
        }
      }));
    std::vector<int> counts(4, 0);
    // pairs[4 * a + b]: how often pick b followed pick a, over the pairs of picks (0, 1), (2, 3),
    // ...: a pick that rotated, or leaned on the one before it, would count evenly per case but
    // not per pair. The pairs do not overlap, so the 16 counts are a plain multinomial sample.
    std::vector<int> pairs(16, 0);
    std::size_t previous = 0;
    for (int trial = 0; trial < 8000; ++trial) {
      gr::yield();  // the feeders refill: every case is ready again
      const std::size_t i = gr::select(gr::recv_case(chans[0]), gr::recv_case(chans[1]), gr::recv_case(chans[2]),
                                       gr::recv_case(chans[3]));
      ++counts[i];
      if (trial % 2 == 1) ++pairs[4 * previous + i];
      previous = i;
    }
    for (auto& c : chans) c.close();
    for (auto& t : feeders) t.join();
    INFO("counts " << counts[0] << " " << counts[1] << " " << counts[2] << " " << counts[3]);
    CHECK(chi_square(counts) < 40);
    for (int c : counts) CHECK((c > 1600 && c < 2400));
    std::string pair_counts;
    for (int p : pairs) pair_counts += std::to_string(p) + " ";
    INFO("pairs " << pair_counts);
    CHECK(chi_square(pairs) < 65);  // 15 degrees of freedom
  }

  TEST_CASE_TEMPLATE("select picks uniformly at random among ready send cases", C, GR_TEST_CAPACITIES) {
    std::array<gr::channel<int>, 3> chans{gr::channel<int>(C::value), gr::channel<int>(C::value),
                                          gr::channel<int>(C::value)};
    std::vector<gr::task> drains;
    std::vector<int> received(3, 0);
    for (int k = 0; k < 3; ++k)
      drains.push_back(gr::spawn([&, k] {
        for (int v : chans[k]) received[k] += v;
      }));
    std::vector<int> counts(3, 0);
    for (int trial = 0; trial < 6000; ++trial) {
      gr::yield();  // the receivers empty the buffers and wait again: every case is ready
      ++counts[gr::select(gr::send_case(chans[0], 1), gr::send_case(chans[1], 1), gr::send_case(chans[2], 1))];
    }
    for (auto& c : chans) c.close();
    for (auto& t : drains) t.join();
    CHECK(received == counts);
    INFO("counts " << counts[0] << " " << counts[1] << " " << counts[2]);
    CHECK(chi_square(counts) < 40);
    for (int c : counts) CHECK((c > 1700 && c < 2300));
  }

  TEST_CASE_TEMPLATE("select picks uniformly among the ready cases wherever they sit among idle ones", C,
                     GR_TEST_CAPACITIES) {
    // Cases 0, 2 and 3 are ready, 1 and 4 never are: a pick that started at a random case and took
    // the next ready one would favour 0 (it follows 4) and 2 (it follows 1).
    std::array<gr::channel<int>, 5> chans{gr::channel<int>(C::value), gr::channel<int>(C::value),
                                          gr::channel<int>(C::value), gr::channel<int>(C::value),
                                          gr::channel<int>(C::value)};
    std::vector<gr::task> feeders;
    for (int k : {0, 2, 3})
      feeders.push_back(gr::spawn([&, k] {
        try {
          for (;;) chans[k].send(k);
        } catch (const gr::channel_closed&) {
        }
      }));
    std::vector<int> counts(6, 0);  // the 5 channel cases and the default
    for (int trial = 0; trial < 6000; ++trial) {
      gr::yield();  // the feeders refill: cases 0, 2 and 3 are ready again
      ++counts[gr::select(gr::recv_case(chans[0]), gr::recv_case(chans[1]), gr::recv_case(chans[2]),
                          gr::recv_case(chans[3]), gr::recv_case(chans[4]), gr::default_case())];
    }
    for (auto& c : chans) c.close();
    for (auto& t : feeders) t.join();
    INFO("counts " << counts[0] << " " << counts[1] << " " << counts[2] << " " << counts[3] << " " << counts[4]
                   << " default " << counts[5]);
    CHECK(counts[1] == 0);
    CHECK(counts[4] == 0);
    CHECK(counts[5] == 0);
    const std::vector<int> ready{counts[0], counts[2], counts[3]};
    CHECK(chi_square(ready) < 40);
    for (int c : ready) CHECK((c > 1700 && c < 2300));
  }

  TEST_CASE_TEMPLATE("select picks uniformly among a ready send and a ready recv case", C, GR_TEST_CAPACITIES) {
    // A feeder keeps the recv case ready (a value buffered, or the feeder waiting to hand one
    // over) and a drain keeps the send case ready (room in the buffer, or the drain waiting).
    gr::channel<int> in(C::value), out(C::value);
    auto feeder = gr::spawn([&] {
      try {
        for (int v = 0;; ++v) in.send(v);
      } catch (const gr::channel_closed&) {
      }
    });
    int drained = 0;
    auto drain = gr::spawn([&] {
      for ([[maybe_unused]] int v : out) ++drained;
    });
    std::vector<int> counts(3, 0);  // send, recv, default
    for (int trial = 0; trial < 4000; ++trial) {
      gr::yield();  // the feeder refills `in`, the drain empties `out` and waits again
      ++counts[gr::select(gr::send_case(out, trial), gr::recv_case(in), gr::default_case())];
    }
    in.close();
    out.close();
    feeder.join();
    drain.join();
    INFO("counts " << counts[0] << " " << counts[1] << " default " << counts[2]);
    CHECK(drained == counts[0]);
    CHECK(counts[2] == 0);
    CHECK(chi_square({counts[0], counts[1]}) < 40);
  }

  TEST_CASE("a send case on a closed channel is ready and throws when it is picked") {
    // Go: a send on a closed channel panics when select picks it, and it is as likely to be
    // picked as any ready case.
    gr::channel<int> shut(0, "shut"), in(1);
    shut.close();
    std::vector<int> counts(2, 0);  // thrown, received
    for (int trial = 0; trial < 4000; ++trial) {
      if (in.size() == 0) REQUIRE(in.try_send(trial) == channel_status::ok);
      try {
        const std::size_t i = gr::select(gr::send_case(shut, 1), gr::recv_case(in));
        CHECK(i == 1);
        ++counts[1];
      } catch (const gr::channel_closed& e) {
        CHECK(contains(e.what(), "channel 'shut'"));
        ++counts[0];
      }
    }
    INFO("counts " << counts[0] << " " << counts[1]);
    CHECK(chi_square(counts) < 40);
    // Ordered: the first ready case in argument order, so always the send.
    const gr::select_options ordered{.ordered = true};
    CHECK_THROWS_AS(gr::select(ordered, gr::send_case(shut, 1), gr::recv_case(in)), gr::channel_closed);
  }

  TEST_CASE("a select over many cases completes its one ready case and registers on all of them") {
    std::array<gr::channel<int>, 70> chans;
    auto select_all = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return gr::select(gr::recv_case(chans[I])...);
    };
    constexpr auto all = std::make_index_sequence<70>{};
    for (std::size_t ready : {0u, 41u, 69u}) {
      REQUIRE(chans[ready].try_send(1) == channel_status::would_block);  // unbuffered: nobody waits
      auto sender = gr::spawn([&, ready] { chans[ready].send(static_cast<int>(ready)); });
      gr::yield();  // the sender waits: that case is ready
      CHECK(select_all(all) == ready);
      sender.join();
      // Nothing ready: the select parks on all 70, and a later sender completes it.
      const std::size_t late = (ready + 7) % 70;
      sender = gr::spawn([&, late] { chans[late].send(0); });
      CHECK(select_all(all) == late);
      sender.join();
    }
    for (auto& c : chans) check_no_stale_receiver(c);
  }

  TEST_CASE_TEMPLATE("a parked select registers in random order so a later counterpart completes each case equally",
                     C, GR_TEST_CAPACITIES) {
    // Both cases wait on the same empty channel: the sender hands its value to whichever
    // registered first (a buffered channel with a receiver waiting buffers nothing).
    gr::channel<int> c(C::value);
    constexpr int trials = 4000;
    int started = 0;  // selects the main task has entered
    int to_parked = 0;  // sends made while the select they complete was parked
    auto sender = gr::spawn([&] {
      for (int i = 0; i < trials; ++i) {
        gr::yield();  // let the main task park in its select first
        // Select i + 1 has begun and has no value yet (each earlier one took one): it is parked.
        to_parked += started == i + 1;
        c.send(i);
      }
    });
    std::vector<int> counts(2, 0);
    for (int i = 0; i < trials; ++i) {
      ++started;
      ++counts[gr::select(gr::recv_case(c), gr::recv_case(c))];
    }
    sender.join();
    INFO("counts " << counts[0] << " " << counts[1]);
    CHECK(to_parked == trials);
    CHECK(chi_square(counts) < 40);
    for (int n : counts) CHECK((n > 1600 && n < 2400));
    check_no_stale_receiver(c);
  }

  TEST_CASE_TEMPLATE("an ordered select takes the first ready case in argument order", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value), idle(C::value);
    std::vector<gr::task> feeders;
    for (auto* ch : {&a, &b})
      feeders.push_back(gr::spawn([ch] {
        try {
          for (;;) ch->send(1);
        } catch (const gr::channel_closed&) {
        }
      }));
    const gr::select_options ordered{.ordered = true};
    for (int trial = 0; trial < 200; ++trial) {
      gr::yield();  // both a and b are ready again
      CHECK(gr::select(ordered, gr::recv_case(idle), gr::recv_case(b), gr::recv_case(a)) == 1);
      gr::yield();
      CHECK(gr::select(ordered, gr::recv_case(a), gr::recv_case(b)) == 0);
    }
    a.close();
    b.close();
    for (auto& t : feeders) t.join();
    check_no_stale_receiver(idle);
  }

  TEST_CASE_TEMPLATE("the default case fires only when no other case is ready", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value);
    fill(b, C::value);  // b is full: a send case on it waits
    int defaults = 0;
    CHECK(gr::select(gr::recv_case(a), gr::send_case(b, 1), gr::default_case([&] { ++defaults; })) == 2);
    CHECK(defaults == 1);
    check_no_stale_receiver(a);
    check_no_stale_sender(b, 0, static_cast<int>(C::value));
    CHECK(gr::select(gr::default_case()) == 0);  // a default alone fires at once

    auto sender = gr::spawn([&] { a.send(5); });
    gr::yield();
    std::optional<int> got;
    CHECK(gr::select(gr::default_case([&] { ++defaults; }), gr::recv_case(a, [&](std::optional<int> v) { got = v; })) ==
          1);
    CHECK(got == 5);
    CHECK(defaults == 1);
    sender.join();
  }

  TEST_CASE_TEMPLATE("the timeout case fires when its time passes before any other case", C, GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    gr::channel<int> a(C::value), b(C::value);
    fill(b, C::value);
    bool timed_out = false;
    CHECK(gr::select(gr::recv_case(a), gr::send_case(b, 1), gr::timeout_case(10ms, [&] { timed_out = true; })) == 2);
    CHECK(timed_out);
    CHECK(vc.elapsed() == 10ms);
    check_no_stale_receiver(a);
    check_no_stale_sender(b, 0, static_cast<int>(C::value));

    // deadline_case: an absolute time; a timeout alone is a sleep.
    CHECK(gr::select(gr::recv_case(a), gr::deadline_case(gr::time_point{} + 25ms)) == 1);
    CHECK(vc.elapsed() == 25ms);
    CHECK(gr::select(gr::timeout_case(5ms)) == 0);
    CHECK(vc.elapsed() == 30ms);
  }

  TEST_CASE_TEMPLATE("a case completed before the deadline wins over the timeout", C, GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    gr::channel<int> a(C::value), b(C::value);
    auto sender = gr::spawn([&] {
      gr::sleep_for(4ms);
      b.send(3);
    });
    std::optional<int> got;
    CHECK(gr::select(gr::recv_case(a), gr::recv_case(b, [&](std::optional<int> v) { got = v; }),
                     gr::timeout_case(10ms)) == 1);
    CHECK(got == 3);
    CHECK(vc.elapsed() == 4ms);
    sender.join();
    // Nothing was left armed: the main task now sleeps its whole 20ms undisturbed.
    gr::sleep_for(20ms);
    CHECK(vc.elapsed() == 24ms);
    check_no_stale_receiver(a);
    check_no_stale_receiver(b);
  }

  TEST_CASE_TEMPLATE("a deadline already past fires at once unless a case is ready", C, GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    vc->advance(1s);
    gr::channel<int> a(C::value);
    CHECK(gr::select(gr::recv_case(a), gr::deadline_case(gr::time_point{})) == 1);
    CHECK(gr::select(gr::recv_case(a), gr::timeout_case(0ms)) == 1);
    CHECK(vc.elapsed() == 1s);
    auto sender = gr::spawn([&] { a.send(1); });
    gr::yield();
    CHECK(gr::select(gr::deadline_case(gr::time_point{}), gr::recv_case(a)) == 1);
    sender.join();
    // A default case wins over a timeout: it does not wait at all.
    CHECK(gr::select(gr::recv_case(a), gr::timeout_case(5ms), gr::default_case()) == 2);
    CHECK(vc.elapsed() == 1s);
    check_no_stale_receiver(a);
  }

  TEST_CASE_TEMPLATE("a case on a null channel pointer never fires as Go's nil channel", C, GR_TEST_CAPACITIES) {
    // Go's merge loop: a drained input's case is switched off by setting its pointer to null.
    gr::channel<int> a(C::value, "a"), b(C::value, "b");
    auto produce = [](gr::channel<int>& ch, int from) {
      return gr::spawn([&ch, from] {
        for (int i = from; i < from + 50; ++i) ch.send(i);
        ch.close();
      });
    };
    gr::task pa = produce(a, 0), pb = produce(b, 1000);
    gr::channel<int>* in_a = &a;
    gr::channel<int>* in_b = &b;
    long sum = 0;
    int count = 0, selects = 0;
    while (in_a || in_b) {
      ++selects;
      gr::select(gr::recv_case(in_a, [&](std::optional<int> v) { v ? (sum += *v, ++count) : (in_a = nullptr, 0); }),
                 gr::recv_case(in_b, [&](std::optional<int> v) { v ? (sum += *v, ++count) : (in_b = nullptr, 0); }));
    }
    CHECK(count == 100);
    CHECK(sum == 49 * 50 / 2 + 50 * 1000 + 49 * 50 / 2);
    CHECK(selects == 102);  // each closed input's nullopt is seen once, then never again
    pa.join();
    pb.join();

    // A nil send case is never ready, even with a receiver waiting elsewhere; a nil recv case
    // likewise: here the timeout fires.
    use_clock<gr::virtual_clock> vc;
    gr::channel<int>* nil = nullptr;
    int value = 7;
    CHECK(gr::select(gr::send_case(nil, value), gr::recv_case(nil), gr::timeout_case(1s)) == 2);
    CHECK(vc.elapsed() == 1s);
    CHECK(gr::select(gr::send_case(nil, 8), gr::default_case()) == 1);
    // Ordered mode and a single case take the same path through ready().
    CHECK(gr::select(gr::select_options{.ordered = true}, gr::recv_case(nil), gr::default_case()) == 1);
  }

  // A send_case of an rvalue keeps its address: select() refuses it as a named variable.
  static_assert(!gr::detail::not_a_kept_borrowing_case<decltype(gr::send_case(std::declval<gr::channel<int>&>(), 1))&>());
  static_assert(gr::detail::not_a_kept_borrowing_case<decltype(gr::send_case(std::declval<gr::channel<int>&>(), 1))>());
  static_assert(gr::detail::not_a_kept_borrowing_case<
                decltype(gr::send_case(std::declval<gr::channel<int>&>(), std::declval<const int&>()))&>());
  static_assert(gr::detail::not_a_kept_borrowing_case<decltype(gr::recv_case(std::declval<gr::channel<int>&>()))&>());

  TEST_CASE("of several timeout cases the earliest fires and a tie goes to the first") {
    // Go allows several time.After cases; a second default_case does not compile (static_assert).
    use_clock<gr::virtual_clock> vc;
    gr::channel<int> a;
    std::string fired;
    CHECK(gr::select(gr::recv_case(a), gr::timeout_case(3s, [&] { fired += "3s "; }),
                     gr::timeout_case(1s, [&] { fired += "1s "; }), gr::deadline_case(gr::time_point::max())) == 2);
    CHECK(vc.elapsed() == 1s);
    CHECK(gr::select(gr::timeout_case(2s, [&] { fired += "first "; }), gr::recv_case(a),
                     gr::timeout_case(2s, [&] { fired += "second "; })) == 0);
    CHECK(vc.elapsed() == 3s);
    CHECK(fired == "1s first ");
    // A case that is due at once still waits for nothing.
    CHECK(gr::select(gr::timeout_case(1h), gr::timeout_case(-1s), gr::recv_case(a)) == 1);
    CHECK(vc.elapsed() == 3s);
    check_no_stale_receiver(a);
  }

  TEST_CASE_TEMPLATE("a closed channel is ready for recv and its case gets what is left then nullopt", C,
                     GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> a(C::value), idle(C::value);
    fill(a, C::value);
    a.close();
    for (int k = 0; k <= n; ++k) {
      std::optional<int> got = -100;
      CHECK(gr::select(gr::recv_case(idle), gr::recv_case(a, [&](std::optional<int> v) { got = v; })) == 1);
      CHECK(got == (k < n ? std::optional<int>(k) : std::nullopt));
    }
    check_no_stale_receiver(idle);
  }

  TEST_CASE_TEMPLATE("a parked select wakes with nullopt when its recv channel closes", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value), b(C::value);
    std::size_t fired = 99;
    std::optional<int> got = -1;
    auto selector = gr::spawn([&] {
      fired = gr::select(gr::recv_case(a, [&](std::optional<int> v) { got = v; }), gr::recv_case(b));
    });
    gr::yield();  // parks
    a.close();
    selector.join();
    CHECK(fired == 0);
    CHECK(got == std::nullopt);
    check_no_stale_receiver(b);
  }

  TEST_CASE_TEMPLATE("a send case on a closed channel throws channel_closed", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value, "shut"), b(C::value);
    a.close();
    try {
      gr::select(gr::send_case(a, 1), gr::recv_case(b));
      FAIL("select returned");
    } catch (const gr::channel_closed& e) {
      CHECK(contains(e.what(), "channel 'shut'"));
    }
    check_no_stale_receiver(b);
  }

  TEST_CASE_TEMPLATE("a parked select throws channel_closed when its send channel closes", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value, "closing"), b(C::value);
    fill(a, C::value);
    int outcome = 0;
    auto selector = gr::spawn([&] {
      try {
        gr::select(gr::send_case(a, 100), gr::recv_case(b));
        outcome = -1;
      } catch (const gr::channel_closed& e) {
        outcome = contains(e.what(), "channel 'closing'") ? 1 : -2;
      }
    });
    gr::yield();  // parks: a is full, b is empty
    a.close();
    selector.join();
    CHECK(outcome == 1);
    check_no_stale_receiver(b);
    for (int k = 0; k < static_cast<int>(C::value); ++k) CHECK(a.recv() == k);  // 100 never went in
    CHECK(a.recv() == std::nullopt);
  }

  TEST_CASE_TEMPLATE("after a select returns no stale registration takes a value", C, GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> a(C::value), b(C::value);
    std::size_t fired = 99;
    std::optional<int> got_a = -1, got_b = -1;
    auto selector = gr::spawn([&] {
      fired = gr::select(gr::recv_case(a, [&](std::optional<int> v) { got_a = v; }),
                         gr::recv_case(b, [&](std::optional<int> v) { got_b = v; }));
    });
    gr::yield();  // parks on both
    b.send(1);    // completes the select; it has not run yet, so its node on `a` is still linked
    CHECK(a.try_send(2) == (n == 0 ? channel_status::would_block : channel_status::ok));
    CHECK(a.size() == (n == 0 ? 0u : 1u));
    selector.join();
    CHECK(fired == 1);
    CHECK(got_b == 1);
    CHECK(got_a == -1);  // the handler of `a` never ran
    if (n > 0) CHECK(a.try_recv().value == 2);
    check_no_stale_receiver(a);
    check_no_stale_receiver(b);

    // The same for send cases: a stale sender never slips its value into a freed slot.
    fill(a, C::value, 0);
    fill(b, C::value, 10);
    selector = gr::spawn([&] { fired = gr::select(gr::send_case(a, 100), gr::send_case(b, 200)); });
    gr::yield();  // parks on both: they are full
    CHECK(b.recv() == (n == 0 ? 200 : 10));
    if (n > 0) CHECK(a.recv() == 0);  // frees a slot of `a`: no sender may fill it
    CHECK(a.size() == (n == 0 ? 0u : static_cast<std::size_t>(n - 1)));
    selector.join();
    CHECK(fired == 1);
    check_no_stale_sender(a, 1, n > 0 ? n - 1 : 0);
    std::vector<int> rest;
    while (auto r = b.try_recv()) rest.push_back(*r.value);
    CHECK(rest.size() == C::value);
    if (n > 0) CHECK(rest.back() == 200);
  }

  // The ready pass keeps the waiter each case found and completes the picked case with it: that
  // waiter must be the live one behind a fired select's stale node, whichever case is picked.
  TEST_CASE("a ready select pairs with the live waiter behind a stale registration") {
    gr::channel<int> a, b, c(1);
    std::vector<int> counts(2, 0);
    for (int trial = 0; trial < 64; ++trial) {
      // Receive: on `a`, a stale node of a fired select, then a blocked sender of 5.
      auto stale = gr::spawn([&] { CHECK(gr::select(gr::send_case(a, 100), gr::send_case(b, 200)) == 1); });
      gr::yield();  // `stale` parks on both
      auto sender = gr::spawn([&] { a.send(5); });
      gr::yield();                 // `sender` waits behind it on `a`
      CHECK(b.recv() == 200);      // fires `stale`, not yet run: its node on `a` is stale
      REQUIRE(c.try_send(6) == channel_status::ok);  // a second ready case
      std::optional<int> got;
      const std::size_t i = gr::select(gr::recv_case(a, [&](std::optional<int> v) { got = v; }),
                                       gr::recv_case(c, [&](std::optional<int> v) { got = v; }));
      ++counts[i];
      CHECK(got == (i == 0 ? 5 : 6));
      if (i == 0)
        CHECK(c.try_recv().value == 6);
      else
        CHECK(a.recv() == 5);
      stale.join();
      sender.join();

      // Send: on `a`, a stale node of a fired select, then a blocked receiver.
      stale = gr::spawn([&] { CHECK(gr::select(gr::recv_case(a), gr::recv_case(b)) == 1); });
      gr::yield();
      std::optional<int> received;
      auto receiver = gr::spawn([&] { received = a.recv(); });
      gr::yield();
      b.send(1);
      const std::size_t j = gr::select(gr::send_case(a, 7), gr::send_case(c, 8));
      ++counts[j];
      if (j == 1) {
        CHECK(c.try_recv().value == 8);
        a.send(9);
      }
      receiver.join();
      stale.join();
      CHECK(received == (j == 0 ? 7 : 9));
    }
    INFO("counts " << counts[0] << " " << counts[1]);
    CHECK(counts[0] > 0);
    CHECK(counts[1] > 0);
    check_no_stale_receiver(a);
    check_no_stale_receiver(b);
  }

  TEST_CASE_TEMPLATE("a select never pairs its own send with its own recv", C, GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    gr::channel<int> a(C::value);
    const std::size_t i = gr::select(gr::send_case(a, 1), gr::recv_case(a), gr::timeout_case(10ms));
    if (C::value == 0) {
      CHECK(i == 2);  // nobody else: only the timeout can fire
      CHECK(vc.elapsed() == 10ms);
      CHECK(a.try_recv().status == channel_status::would_block);
      check_no_stale_receiver(a);
    } else {
      CHECK(i == 0);  // the buffer has room: the send completes at once
      CHECK(a.size() == 1);
      CHECK(a.try_recv().value == 1);
    }
  }

  TEST_CASE("a counterpart completes either side of a select with the same channel in a send and a recv case") {
    gr::channel<int> a;
    std::size_t fired = 99;
    std::optional<int> got;
    auto selector = [&] {
      fired = gr::select(gr::send_case(a, 5), gr::recv_case(a, [&](std::optional<int> v) { got = v; }));
    };
    auto t = gr::spawn(selector);
    gr::yield();  // parks on both sides of `a`
    CHECK(a.recv() == 5);
    t.join();
    CHECK(fired == 0);

    t = gr::spawn(selector);
    gr::yield();
    a.send(7);
    t.join();
    CHECK(fired == 1);
    CHECK(got == 7);
    check_no_stale_receiver(a);
    CHECK(a.try_recv().status == channel_status::would_block);
  }

  TEST_CASE_TEMPLATE("the same channel in two recv cases is picked evenly when ready", C, GR_TEST_CAPACITIES) {
    gr::channel<int> a(C::value);
    auto feeder = gr::spawn([&] {
      try {
        for (;;) a.send(1);
      } catch (const gr::channel_closed&) {
      }
    });
    std::vector<int> counts(2, 0);
    for (int trial = 0; trial < 4000; ++trial) {
      gr::yield();
      ++counts[gr::select(gr::recv_case(a), gr::recv_case(a))];
    }
    a.close();
    feeder.join();
    CHECK(chi_square(counts) < 40);
  }

  TEST_CASE("a channel of a select may be destroyed once the select has completed on another") {
    auto a = std::make_unique<gr::channel<int>>(0, "short-lived");
    gr::channel<int> b;
    std::size_t fired = 99;
    auto selector = gr::spawn([&] { fired = gr::select(gr::recv_case(*a), gr::recv_case(b)); });
    gr::yield();  // parks on both
    b.send(1);    // completes the select, which has not run yet
    a.reset();    // its owner is done with `a`: the select's node on it is stale, not a waiter
    selector.join();
    CHECK(fired == 1);
  }

  TEST_CASE("an rvalue in a send case is moved from only if that case fires") {
    gr::channel<std::unique_ptr<int>> a, b(1);
    auto p = std::make_unique<int>(1);
    auto q = std::make_unique<int>(2);
    CHECK(gr::select(gr::send_case(a, std::move(p)), gr::default_case()) == 1);
    CHECK(p);  // not sent: still ours
    CHECK(gr::select(gr::send_case(a, std::move(p)), gr::send_case(b, std::move(q))) == 1);
    CHECK(p);
    CHECK_FALSE(q);
    CHECK(**b.recv() == 2);
  }

  TEST_CASE("handlers run after the select is over so they may block and select again") {
    gr::channel<int> in, out, inner;
    auto peer = gr::spawn([&] {
      in.send(1);
      CHECK(out.recv() == 2);  // the handler below blocks in send until this recv
      inner.send(3);
    });
    std::optional<int> nested;
    gr::select(gr::recv_case(in, [&](std::optional<int> v) {
      out.send(*v + 1);
      gr::select(gr::recv_case(inner, [&](std::optional<int> w) { nested = w; }), gr::recv_case(in));
    }));
    CHECK(nested == 3);
    peer.join();
    check_no_stale_receiver(in);
  }

  TEST_CASE_TEMPLATE("a parked select allocates nothing", C, GR_TEST_CAPACITIES) {
    if (!allocation_counting()) {
      MESSAGE("allocation counting is off in sanitizer builds");
      return;
    }
    gr::channel<int> a(C::value), b(C::value), back(C::value);
    auto peer = gr::spawn([&] {
      for (int v : back) {  // answers each message on a or b, alternately
        if (v % 2)
          a.send(v);
        else
          b.send(v);
      }
    });
    auto rounds = [&](int count) {
      for (int i = 0; i < count; ++i) {
        back.send(i);
        gr::select(gr::recv_case(a), gr::recv_case(b), gr::timeout_case(1h));
      }
    };
    rounds(10);
    const std::uint64_t before = allocations();
    rounds(1000);
    CHECK(allocations() - before == 0);
    back.close();
    peer.join();
  }

  TEST_CASE_TEMPLATE("a select that finds ready cases allocates nothing", C, GR_TEST_CAPACITIES) {
    if (!allocation_counting()) {
      MESSAGE("allocation counting is off in sanitizer builds");
      return;
    }
    gr::channel<int> a(C::value), b(C::value), idle(C::value);
    auto feeder = [&](gr::channel<int>& ch) {
      return gr::spawn([&ch] {
        try {
          for (;;) ch.send(1);
        } catch (const gr::channel_closed&) {
        }
      });
    };
    auto fa = feeder(a), fb = feeder(b);
    auto rounds = [&](int count) {
      for (int i = 0; i < count; ++i) {
        gr::yield();  // a and b are ready
        gr::select(gr::recv_case(a), gr::recv_case(idle), gr::recv_case(b), gr::default_case());
      }
    };
    rounds(10);
    const std::uint64_t before = allocations();
    rounds(1000);
    CHECK(allocations() - before == 0);
    a.close();
    b.close();
    fa.join();
    fb.join();
  }
}
