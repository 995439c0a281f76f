// Channels at the edges of their owners' lives: a thread that ends while tasks are blocked on a
// channel one of them owns, a sender woken by close() after which the channel is destroyed, and
// a select whose only deadline is "never".
#include "test_util.hpp"
#include "thread_check.hpp"

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>

TEST_SUITE("channel.shutdown") {
  TEST_CASE("a thread ending while a worker waits on its server task's channel unwinds both") {
    bool server_unwound = false;
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      gr::spawn([&] {
        struct mark {
          bool& flag;
          ~mark() { flag = true; }
        } m{server_unwound};
        gr::channel<int> jobs(0, "jobs");
        auto worker = gr::spawn([&] { jobs.recv(); }, {.name = "worker"});
        worker.join();
      }, {.name = "server"}).detach();
      gr::yield();
      gr::yield();
    });
    CHECK(server_unwound);
    CHECK(r.stacks_kept == 0);  // both stacks went back when the thread ended
  }

  TEST_CASE("a channel destroyed by the thread's shutdown leaves its waiters no dangling wait reason") {
    // The owner is newer than the waiter, so shutdown unwinds it first and its channel goes while
    // the waiter still blocks on it. A snapshot taken after that (by the owner's last destructor)
    // must not read the channel's wait reason (its name is freed memory by then).
    std::string seen = "no snapshot";
    const gr_test::thread_outcome r = gr_test::on_thread([&] {
      gr::channel<int>* shared = nullptr;
      gr::spawn(
          [&] {
            while (!shared) gr::yield();
            shared->recv();
          },
          {.name = "waiter"})
          .detach();
      gr::spawn(
          [&] {
            struct probe {
              std::string& out;
              ~probe() {
                for (const gr::task_info& t : gr::scheduler::current().snapshot())
                  if (t.name == "waiter") out = t.state + "|" + t.waiting;
              }
            } last_out{seen};
            gr::channel<int> jobs(0, "a channel whose name is long enough to live on the heap");
            shared = &jobs;
            gr::channel<int> never(0, "never");
            never.recv();
          },
          {.name = "owner"})
          .detach();
      for (int i = 0; i < 3; ++i) gr::yield();
    });
    CHECK(seen == "blocked|");
    CHECK(r.stacks_kept == 0);
  }

  TEST_CASE("a sender woken by close gets channel_closed naming the channel after it is destroyed") {
    auto ch = std::make_unique<gr::channel<int>>(0, "a channel whose name lives on the heap, not inline");
    std::string what;
    auto sender = gr::spawn([&what, c = ch.get()] {
      try {
        c->send(1);
      } catch (const gr::channel_closed& e) {
        what = e.what();
      }
    });
    gr::yield();  // the sender blocks
    ch->close();
    ch.reset();  // nobody is blocked on it any more, so this is allowed
    sender.join();
    CHECK(what.find("a channel whose name lives on the heap") != std::string::npos);
    CHECK(what.find("closed") != std::string::npos);
  }

  TEST_CASE("a select send case woken by close throws channel_closed after the channel is destroyed") {
    auto ch = std::make_unique<gr::channel<int>>(0, "select target");
    bool threw = false;
    auto t = gr::spawn([&threw, c = ch.get()] {
      try {
        gr::select(gr::send_case(*c, 7));
      } catch (const gr::channel_closed& e) {
        threw = std::string(e.what()).find("select target") != std::string::npos;
      }
    });
    gr::yield();
    ch->close();
    ch.reset();
    t.join();
    CHECK(threw);
  }

  TEST_CASE("a select whose deadline is time_point max is reported as a deadlock") {
    gr::channel<int> ch(0, "never");
    auto t = gr::spawn([&] { gr::select(gr::recv_case(ch), gr::deadline_case(gr::time_point::max())); });
    CHECK_THROWS_AS(t.join(), gr::deadlock_error);
    ch.close();
    t.join();
  }
}
