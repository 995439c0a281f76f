// channel<T>: blocking and non-blocking sends and receives, the buffer, the hand-over rules and
// FIFO service, at capacities 0, 1, 2 and 64.
#include "test_util.hpp"
#include "thread_check.hpp"

#include <doctest/doctest.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <gr/sched/ready_policy.hpp>
#include <gr/sched/trace.hpp>

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

using gr::channel_status;
using namespace gr_test;

namespace {

// every_form: sends `count` values made by make(i) through a channel of `capacity`, each with a
// different form (send, try_send, send_for, a select send case), and receives them each with a
// different form (recv, try_recv, recv_for, a select recv case, range-for). Returns the values
// as value_of() reads them, in the order received.
template <class T, class Make, class ValueOf>
std::vector<int> every_form(std::size_t capacity, int count, Make make, ValueOf value_of) {
  gr::channel<T> c(capacity, "forms");
  auto producer = gr::spawn([&] {
    for (int i = 0; i < count; ++i) {
      T v = make(i);
      switch (i % 4) {
        case 0: c.send(std::move(v)); break;
        case 1:
          while (c.try_send(std::move(v)) != channel_status::ok) gr::yield();  // moved from only on ok
          break;
        case 2: CHECK(c.send_for(std::move(v), 1h) == channel_status::ok); break;
        case 3: gr::select(gr::send_case(c, std::move(v))); break;
      }
    }
    c.close();
  });
  std::vector<int> got;
  for (int i = 0; got.size() < static_cast<std::size_t>(count) / 2; ++i) {
    switch ((i + 2) % 4) {  // never try_recv against try_send: unbuffered, both would spin
      case 0: {
        std::optional<T> v = c.recv();
        REQUIRE(v);
        got.push_back(value_of(*v));
        break;
      }
      case 1: {
        gr::recv_result<T> r = c.try_recv();
        while (r.status == channel_status::would_block) {
          gr::yield();
          r = c.try_recv();
        }
        REQUIRE(r.status == channel_status::ok);
        got.push_back(value_of(*r.value));
        break;
      }
      case 2: {
        gr::recv_result<T> r = c.recv_for(1h);
        REQUIRE(r);
        got.push_back(value_of(*r.value));
        break;
      }
      case 3:
        gr::select(gr::recv_case(c, [&](std::optional<T> v) {
          REQUIRE(v);
          got.push_back(value_of(*v));
        }));
        break;
    }
  }
  for (T& v : c) got.push_back(value_of(v));  // the rest, until closed and drained
  producer.join();
  return got;
}

std::vector<int> iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_SUITE("channel.basic") {
  TEST_CASE_TEMPLATE("values from one sender arrive in the order sent", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    auto producer = gr::spawn([&] {
      for (int i = 0; i < 500; ++i) {
        c.send(i);
        if (i % 7 == 0) gr::yield();
      }
      c.close();
    });
    int expected = 0;
    for (int v : c) {
      CHECK(v == expected);
      ++expected;
      if (v % 5 == 0) gr::yield();
    }
    CHECK(expected == 500);
    CHECK(c.recv() == std::nullopt);
    producer.join();
  }

  TEST_CASE_TEMPLATE("capacity size and closed describe the channel", C, GR_TEST_CAPACITIES) {
    constexpr std::size_t n = C::value;
    gr::channel<int> c(n, "described");
    CHECK(c.capacity() == n);
    CHECK(c.size() == 0);
    CHECK_FALSE(c.closed());
    CHECK(c.name() == "described");
    fill(c, n);
    CHECK(c.size() == n);
    c.close();
    CHECK(c.closed());
    CHECK(c.size() == n);
    for (std::size_t i = 0; i < n; ++i) CHECK(c.recv() == static_cast<int>(i));
    CHECK(c.size() == 0);
  }

  TEST_CASE_TEMPLATE("try_send and try_recv complete only what needs no waiting", C, GR_TEST_CAPACITIES) {
    constexpr std::size_t n = C::value;
    gr::channel<int> c(n);
    gr::recv_result<int> r = c.try_recv();
    CHECK(r.status == channel_status::would_block);
    CHECK_FALSE(r);
    CHECK_FALSE(r.value);
    for (std::size_t i = 0; i < n; ++i) CHECK(c.try_send(static_cast<int>(i)) == channel_status::ok);
    CHECK(c.try_send(99) == channel_status::would_block);  // full (unbuffered: nobody waits)
    const int lvalue = 98;
    CHECK(c.try_send(lvalue) == channel_status::would_block);
    CHECK(c.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
      r = c.try_recv();
      CHECK(r);
      CHECK(r.value == static_cast<int>(i));
    }
    CHECK(c.try_recv().status == channel_status::would_block);
  }

  TEST_CASE_TEMPLATE("try_send hands the value to a receiver that waits", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::optional<int> got;
    auto receiver = gr::spawn([&] { got = c.recv(); });
    gr::yield();  // the receiver blocks
    CHECK(c.try_send(7) == channel_status::ok);
    CHECK(c.size() == 0);
    receiver.join();
    CHECK(got == 7);
  }

  TEST_CASE_TEMPLATE("try_recv takes the value of a sender that waits", C, GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value);
    fill(c, C::value);
    auto sender = gr::spawn([&] { c.send(100); });
    gr::yield();  // the sender blocks: the buffer is full
    gr::recv_result<int> r = c.try_recv();
    CHECK(r.value == (n == 0 ? 100 : 0));
    CHECK(c.size() == C::value);  // the sender's value took the freed slot
    for (int i = 1; i < n; ++i) CHECK(c.try_recv().value == i);
    if (n > 0) CHECK(c.try_recv().value == 100);
    CHECK(c.try_recv().status == channel_status::would_block);
    sender.join();
  }

  TEST_CASE_TEMPLATE("a sender that finds a receiver waiting hands over directly and goes on", C,
                     GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::optional<int> got;
    bool receiver_resumed = false;
    auto receiver = gr::spawn([&] {
      got = c.recv();
      receiver_resumed = true;
    });
    gr::yield();
    c.send(7);  // completes the receiver's recv without buffering or waiting for it to run
    CHECK(c.size() == 0);
    CHECK_FALSE(receiver_resumed);
    receiver.join();
    CHECK(got == 7);
  }

  TEST_CASE_TEMPLATE("a receiver that frees a slot moves the first blocked sender's value into it", C,
                     GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value);
    fill(c, C::value);
    bool first_returned = false;
    auto first = gr::spawn([&] {
      c.send(100);
      first_returned = true;
    });
    auto second = gr::spawn([&] { c.send(101); });
    gr::yield();  // both senders block
    CHECK(c.size() == C::value);
    CHECK(c.recv() == (n == 0 ? 100 : 0));
    CHECK(c.size() == C::value);  // refilled at once from the first sender
    CHECK_FALSE(first_returned);  // ... which has not even run yet
    for (int i = 1; i < n; ++i) CHECK(c.try_recv().value == i);
    if (n > 0) CHECK(c.try_recv().value == 100);
    CHECK(c.try_recv().value == 101);  // the second sender's, taken in its turn
    CHECK(c.try_recv().status == channel_status::would_block);
    first.join();
    second.join();
    CHECK(first_returned);
  }

  TEST_CASE_TEMPLATE("blocked receivers are served first come first served", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    std::vector<std::optional<int>> got(4);
    std::vector<gr::task> receivers;
    for (std::size_t i = 0; i < got.size(); ++i) receivers.push_back(gr::spawn([&, i] { got[i] = c.recv(); }));
    gr::yield();  // all four block, in spawn order
    for (int i = 0; i < 4; ++i) c.send(i);
    for (auto& t : receivers) t.join();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == static_cast<int>(i));
  }

  TEST_CASE_TEMPLATE("blocked senders are served first come first served", C, GR_TEST_CAPACITIES) {
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value);
    fill(c, C::value);
    std::vector<gr::task> senders;
    for (int i = 0; i < 4; ++i) senders.push_back(gr::spawn([&, i] { c.send(100 + i); }));
    gr::yield();  // all four block, in spawn order
    for (int i = 0; i < n; ++i) CHECK(c.recv() == i);
    for (int i = 0; i < 4; ++i) CHECK(c.recv() == 100 + i);
    for (auto& t : senders) t.join();
  }

  TEST_CASE_TEMPLATE("send_for times out when there is no room and leaves the value with the caller", C,
                     GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    gr::channel<std::unique_ptr<int>> c(C::value);
    for (std::size_t i = 0; i < C::value; ++i) c.send(std::make_unique<int>(static_cast<int>(i)));
    auto p = std::make_unique<int>(42);
    CHECK(c.send_for(std::move(p), 10ms) == channel_status::timeout);
    CHECK(vc.elapsed() == 10ms);
    REQUIRE(p);
    CHECK(*p == 42);
    CHECK(c.send_until(std::move(p), gr::now() + 5ms) == channel_status::timeout);
    CHECK(vc.elapsed() == 15ms);
    REQUIRE(p);
    // The timed-out sender left nothing behind: the buffered values come out, then nothing.
    for (std::size_t i = 0; i < C::value; ++i) CHECK(*c.recv().value() == static_cast<int>(i));
    CHECK(c.try_recv().status == channel_status::would_block);
  }

  TEST_CASE_TEMPLATE("recv_for times out when nothing comes", C, GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    gr::channel<int> c(C::value);
    gr::recv_result<int> r = c.recv_for(10ms);
    CHECK(r.status == channel_status::timeout);
    CHECK_FALSE(r.value);
    CHECK(vc.elapsed() == 10ms);
    CHECK(c.recv_until(gr::now() - 1ms).status == channel_status::timeout);  // a deadline already past
    CHECK(vc.elapsed() == 10ms);
    check_no_stale_receiver(c);  // neither timed-out receive left itself registered
  }

  TEST_CASE_TEMPLATE("send_until and recv_until complete when a counterpart comes before the deadline", C,
                     GR_TEST_CAPACITIES) {
    use_clock<gr::virtual_clock> vc;
    constexpr int n = static_cast<int>(C::value);
    gr::channel<int> c(C::value);
    fill(c, C::value);
    auto consumer = gr::spawn([&] {
      gr::sleep_for(3ms);
      for (int i = 0; i <= n; ++i) CHECK(c.recv() == (i < n ? i : 100));
    });
    CHECK(c.send_until(100, gr::now() + 10ms) == channel_status::ok);
    CHECK(vc.elapsed() == 3ms);
    consumer.join();

    auto producer = gr::spawn([&] {
      gr::sleep_for(3ms);
      c.send(5);
    });
    gr::recv_result<int> r = c.recv_until(gr::now() + 10ms);
    CHECK(r.status == channel_status::ok);
    CHECK(r.value == 5);
    CHECK(vc.elapsed() == 6ms);
    producer.join();
  }

  TEST_CASE_TEMPLATE("range-for reads every value until the channel is closed and drained", C, GR_TEST_CAPACITIES) {
    gr::channel<int> c(C::value);
    auto producer = gr::spawn([&] {
      for (int i = 1; i <= 100; ++i) c.send(i);
      c.close();
    });
    int count = 0, sum = 0;
    for (int v : c) {
      ++count;
      sum += v;
    }
    CHECK(count == 100);
    CHECK(sum == 5050);
    producer.join();

    // A closed channel with values buffered: range-for drains them.
    gr::channel<int> d(C::value);
    fill(d, C::value);
    d.close();
    count = 0;
    for (int v : d) CHECK(v == count++);
    CHECK(count == static_cast<int>(C::value));
  }

  TEST_CASE_TEMPLATE("move-only values pass through every form without a copy", C, GR_TEST_CAPACITIES) {
    std::vector<int*> addresses;
    std::vector<int*> received;
    const std::vector<int> got = every_form<std::unique_ptr<int>>(
        C::value, 40,
        [&](int i) {
          auto p = std::make_unique<int>(i);
          addresses.push_back(p.get());
          return p;
        },
        [&](const std::unique_ptr<int>& p) {
          received.push_back(p.get());
          return *p;
        });
    CHECK(got == iota(40));
    CHECK(received == addresses);  // the very objects sent: moved, never copied
  }

  TEST_CASE_TEMPLATE("a type with no default constructor passes through every form", C, GR_TEST_CAPACITIES) {
    const std::vector<int> got = every_form<no_default>(
        C::value, 40, [](int i) { return no_default(i); }, [](const no_default& v) { return v.get(); });
    CHECK(got == iota(40));
  }

  TEST_CASE_TEMPLATE("a channel of std::monostate carries signals as Go's chan struct{}", C, GR_TEST_CAPACITIES) {
    gr::channel<std::monostate> done(C::value, "done");
    int finished = 0;
    for (int i = 0; i < 3; ++i)
      gr::spawn([&] {
        ++finished;
        done.send({});
      }).detach();
    for (int i = 0; i < 3; ++i) CHECK(done.recv().has_value());
    CHECK(finished == 3);
    done.close();
    CHECK_FALSE(done.recv().has_value());
    gr::scheduler::current().run();  // the senders return
  }

  TEST_CASE_TEMPLATE("blocking send and recv allocate nothing", C, GR_TEST_CAPACITIES) {
    if (!allocation_counting()) {
      MESSAGE("allocation counting is off in sanitizer builds");
      return;
    }
    gr::channel<int> in(C::value), out(C::value), go;
    auto echo = gr::spawn([&] {
      for (int v : in) out.send(v);
      out.close();
    });
    auto feeder = gr::spawn([&] {  // a stream into `in`, `n` values at a time, with timed sends
      for (int n : go)
        for (int i = 0; i < n; ++i) CHECK(in.send_for(i, 1h) == channel_status::ok);
    });
    auto rounds = [&](int n) {
      for (int i = 0; i < n; ++i) {  // ping-pong: each side blocks every round
        in.send(i);
        (void)out.recv();
      }
      go.send(n);  // a stream: the feeder blocks when `in` is full, the echo when `out` is
      for (int i = 0; i < n; ++i) (void)out.recv_for(1h);  // parks on a timer when `out` is empty
    };
    rounds(200);  // warm up: the scheduler's timer heap grows to its size once (amortized)
    const std::uint64_t before = allocations();
    rounds(1000);
    const std::uint64_t after = allocations();
    CHECK(after - before == 0);
    go.close();
    feeder.join();
    in.close();
    CHECK(out.recv() == std::nullopt);
    echo.join();
  }

  // The hand-over's wake is inline (wait.hpp) and queues on the built-in ring itself; with a
  // custom policy set it must go through the policy, or the woken task is never run.
  TEST_CASE("a custom ready policy gets every task that a channel hand-over wakes") {
    // counting: round_robin's order, counting what it is given.
    class counting final : public gr::ready_policy {
    public:
      void push(gr::detail::task_ctl* t) noexcept override {
        ++pushes;
        inner_.push(t);
      }
      gr::detail::task_ctl* pop() noexcept override { return inner_.pop(); }
      bool empty() const noexcept override { return inner_.empty(); }
      std::size_t size() const noexcept override { return inner_.size(); }
      std::size_t pushes = 0;

    private:
      gr::round_robin inner_;
    };
    long sum = 0;
    std::size_t pushes = 0;
    // On a thread of its own: a policy stays set for the rest of its scheduler's life.
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      auto policy = std::make_unique<counting>();
      counting* p = policy.get();
      gr::scheduler::current().set_policy(std::move(policy));
      gr::channel<int> ping, pong;
      auto echo = gr::spawn([&] {
        for (int v : ping) pong.send(v + 1);
      });
      for (int i = 0; i < 100; ++i) {
        ping.send(i);
        sum += *pong.recv();
      }
      ping.close();
      echo.join();
      pushes = p->pushes;
    });
    CHECK(r.leaks_at_end == "");
    CHECK(r.stacks_kept == 0);
    CHECK(sum == 100 * 99 / 2 + 100);
    CHECK(pushes >= 200);  // each message wakes its parked sender
  }

  // With a hook set, the inline wake and the park report to it (wake_slow, park_traced).
  TEST_CASE("a trace hook sees a channel hand-over's block then wake then switches in order") {
    static std::vector<std::string> seen;
    seen.clear();
    gr::trace_hook hook = [](const gr::trace_event& e, void*) {
      switch (e.what) {
        case gr::trace_event::type::block:
          seen.push_back("block " + std::string(e.task_name) + " " + gr::describe_wait(*e.reason));
          break;
        case gr::trace_event::type::wake:
          seen.push_back("wake " + std::string(e.task_name) + " by " + std::string(e.other_name));
          break;
        case gr::trace_event::type::switch_:
          seen.push_back("switch " + std::string(e.task_name) + " to " + std::string(e.other_name));
          break;
        case gr::trace_event::type::exit: seen.push_back("exit " + std::string(e.task_name)); break;
        default: break;
      }
    };
    gr::channel<int> c(0, "handover");
    auto receiver = gr::spawn([&] { CHECK(c.recv() == 7); }, {.name = "receiver"});
    const gr::trace_hook old = gr::set_trace_hook(hook);
    c.send(7);  // no receiver yet: main parks until the receiver takes the value
    gr::set_trace_hook(old);
    receiver.join();
    const std::vector<std::string> expected{
        "block main send on channel 'handover'",
        "switch main to receiver",
        "wake main by receiver",
        "exit receiver",
        "switch receiver to main",
    };
    std::string got;
    for (const auto& e : seen) got += "\n  " + e;
    INFO("events:", got);
    CHECK(seen == expected);
  }

#if defined(NDEBUG) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Optimised builds only: unoptimised and sanitized frames are several times larger. Under LTO
  // the scheduler's park is inlined into the channel's; once it also took in the trace hook's
  // dump formatter and an 824-byte frame, and a parked task kept 1.5 KiB of stack (now about 650
  // bytes). The bound catches that coming back.
  TEST_CASE("a task parked in a channel keeps under 1 KiB of stack below its frame") {
    gr::channel<int> in(0, "in"), out(0, "out");
    auto receiver = gr::spawn([&] { (void)in.recv(); }, {.name = "receiver"});
    auto sender = gr::spawn([&] { out.send(1); }, {.name = "sender"});
    gr::yield();
    int seen = 0;
    for (const auto& t : gr::scheduler::current().snapshot()) {
      if (t.name != "receiver" && t.name != "sender") continue;
      INFO(t.name, " uses ", t.stack_used, " bytes");
      CHECK(t.stack_used > 0);
      CHECK(t.stack_used < 1024);
      ++seen;
    }
    CHECK(seen == 2);
    in.send(1);
    (void)out.recv();
    receiver.join();
    sender.join();
  }
#endif
}
