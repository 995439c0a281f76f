// Channel benchmarks, beside their Boost.Fiber peers (all on one thread, cooperative):
//   BM_Channel_PingPong/cap:0       the main task and one spawned task bounce a value over two
//                                   unbuffered channels: each message is a send met by a recv,
//                                   and each costs one task switch
//   BM_BoostFiber_PingPong          the same with boost::fibers::unbuffered_channel<int>
//   BM_Channel_Stream/cap:1024      a producer task streams ints to the main task through a
//                                   channel of capacity 1,024 (a side blocks only when it is full
//                                   or empty)
//   BM_BoostFiber_Stream/cap:1024   the same with boost::fibers::buffered_channel<int>(1024)
//   BM_Select_PingPong              ping-pong where each side receives through a select over two
//                                   channels (its input and a quit channel), then answers
// One item is one message (SetItemsProcessed): a round trip counts two.
#include <benchmark/benchmark.h>

#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/task.hpp>

#include <boost/fiber/buffered_channel.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/unbuffered_channel.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>

namespace {

constexpr std::int64_t stream_capacity = 1024;

// ---- ping-pong ---------------------------------------------------------------------------------

void BM_Channel_PingPong(benchmark::State& state) {
  const auto capacity = static_cast<std::size_t>(state.range(0));
  gr::channel<int> ping(capacity), pong(capacity);
  gr::task echo = gr::spawn([&] {
    for (int v : ping) pong.send(v);
  });
  int v = 0;
  for (auto _ : state) {
    ping.send(v);
    v = *pong.recv();
  }
  benchmark::DoNotOptimize(v);
  ping.close();
  echo.join();
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_Channel_PingPong)->ArgName("cap")->Arg(0);

void BM_BoostFiber_PingPong(benchmark::State& state) {
  boost::fibers::unbuffered_channel<int> ping, pong;
  boost::fibers::fiber echo([&] {
    int v;
    while (ping.pop(v) == boost::fibers::channel_op_status::success) pong.push(v);
  });
  int v = 0;
  for (auto _ : state) {
    ping.push(v);
    pong.pop(v);
  }
  benchmark::DoNotOptimize(v);
  ping.close();
  echo.join();
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_BoostFiber_PingPong);

// ---- a buffered stream -------------------------------------------------------------------------

void BM_Channel_Stream(benchmark::State& state) {
  gr::channel<int> c(static_cast<std::size_t>(state.range(0)));
  gr::task producer = gr::spawn([&] {
    try {
      for (int i = 0;; ++i) c.send(i);
    } catch (const gr::channel_closed&) {  // the benchmark is over
    }
  });
  std::int64_t sum = 0;
  for (auto _ : state) sum += *c.recv();
  benchmark::DoNotOptimize(sum);
  c.close();
  producer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Channel_Stream)->ArgName("cap")->Arg(stream_capacity);

void BM_BoostFiber_Stream(benchmark::State& state) {
  boost::fibers::buffered_channel<int> c(static_cast<std::size_t>(state.range(0)));  // a power of 2
  boost::fibers::fiber producer([&] {
    for (int i = 0; c.push(i) == boost::fibers::channel_op_status::success; ++i) {
    }
  });
  std::int64_t sum = 0;
  for (auto _ : state) {
    int v = 0;
    c.pop(v);
    sum += v;
  }
  benchmark::DoNotOptimize(sum);
  c.close();
  producer.join();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BoostFiber_Stream)->ArgName("cap")->Arg(stream_capacity);

// ---- select ping-pong ----------------------------------------------------------------------------

// Each side waits for the next message in a select over its input and a `quit` channel (Go's
// `select { case v := <-in: ...; case <-quit: return }`), then answers with a send. Every
// message is received by a select that registers on both channels and parks.
void BM_Select_PingPong(benchmark::State& state) {
  gr::channel<int> ping, pong, quit;
  gr::task echo = gr::spawn([&] {
    for (bool running = true; running;) {
      gr::select(gr::recv_case(ping, [&](std::optional<int> v) { pong.send(*v); }),
                 gr::recv_case(quit, [&] { running = false; }));
    }
  });
  int v = 0;
  for (auto _ : state) {
    ping.send(v);
    gr::select(gr::recv_case(pong, [&](std::optional<int> m) { v = *m; }), gr::recv_case(quit));
  }
  benchmark::DoNotOptimize(v);
  quit.close();
  echo.join();
  state.SetItemsProcessed(2 * state.iterations());
}
BENCHMARK(BM_Select_PingPong);

}  // namespace
