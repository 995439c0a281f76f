// gr_instr_count <operation> <rounds> (or --list): runs one hot path a fixed number of times, for
// `valgrind --tool=callgrind` to count its instructions (tools/count runs it twice, at n and 2n
// rounds, and divides the difference by n, so setup and teardown cancel out). Instruction counts
// do not drift with the machine's load as times do: they show a change of a few instructions
// that no benchmark run on this shared machine can. Operations, one round each:
//   switch    a greenlet switch there and back (2 switches)
//   yield     two tasks yield to each other (2 switches)
//   ring      1,024 tasks yield round a ring (one switch)
//   pingpong  a message over an unbuffered channel and its answer (2 messages)
//   select    the same through a select over two channels on each side (2 messages)
//   spawn     spawn an empty task and join it
//   stream    one item through a channel of capacity 1,024
// Built with gr_bench, the same way (LTO in the release preset), so the counts are of the code the
// benchmarks time.
#include <gr/gr.hpp>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

namespace {

void run_switch(long n) {
  gr::greenlet* main = gr::greenlet::current();
  gr::greenlet g([main](void* arg) -> void* {
    for (;;) arg = main->switch_to(arg);
  });
  void* v = g.switch_to();
  for (long i = 0; i < n; ++i) v = g.switch_to(v);
}

void run_yield(long n) {
  bool stop = false;
  gr::task t = gr::spawn([&] {
    while (!stop) gr::yield();
  });
  for (long i = 0; i < n; ++i) gr::yield();
  stop = true;
  t.join();
}

void run_ring(long n) {
  constexpr int tasks = 1024;
  bool stop = false;
  std::vector<gr::task> ring;
  for (int i = 0; i < tasks - 1; ++i)
    ring.push_back(gr::spawn([&] {
      while (!stop) gr::yield();
    }));
  for (long i = 0; i < n / tasks; ++i) gr::yield();  // a lap is `tasks` switches
  stop = true;
  for (auto& t : ring) t.join();
}

void run_pingpong(long n) {
  gr::channel<int> ping, pong;
  gr::task echo = gr::spawn([&] {
    for (int v : ping) pong.send(v);
  });
  int v = 0;
  for (long i = 0; i < n; ++i) {
    ping.send(v);
    v = *pong.recv();
  }
  ping.close();
  echo.join();
}

void run_select(long n) {
  gr::channel<int> ping, pong, quit;
  gr::task echo = gr::spawn([&] {
    for (bool running = true; running;)
      gr::select(gr::recv_case(ping, [&](std::optional<int> v) { pong.send(*v); }),
                 gr::recv_case(quit, [&] { running = false; }));
  });
  int v = 0;
  for (long i = 0; i < n; ++i) {
    ping.send(v);
    gr::select(gr::recv_case(pong, [&](std::optional<int> m) { v = *m; }), gr::recv_case(quit));
  }
  quit.close();
  echo.join();
}

void run_spawn(long n) {
  for (long i = 0; i < n; ++i) gr::spawn([] {}).join();
}

void run_stream(long n) {  // exits with 1 unless every item arrived
  gr::channel<int> ch(1024);
  long sum = 0;
  gr::task consumer = gr::spawn([&] {
    for (int v : ch) sum += v;
  });
  for (long i = 0; i < n; ++i) ch.send(static_cast<int>(i));
  ch.close();
  consumer.join();
  if (sum != n * (n - 1) / 2) {
    std::fprintf(stderr, "gr_instr_count: stream: the items summed to %ld, not %ld\n", sum, n * (n - 1) / 2);
    std::exit(1);
  }
}

// operations: the one list of them; `gr_instr_count --list` prints it for tools/count.
struct operation {
  std::string_view name;
  std::string_view round;  // what one round is
  void (*run)(long);
};
constexpr operation operations[] = {
    {"switch", "2 switches", run_switch},   {"yield", "2 switches", run_yield},
    {"ring", "1 switch", run_ring},         {"pingpong", "2 messages", run_pingpong},
    {"select", "2 messages", run_select},   {"spawn", "spawn + join", run_spawn},
    {"stream", "1 item", run_stream},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--list") {  // "<name> <what a round is>" lines
    for (const auto& op : operations)
      std::printf("%.*s %.*s\n", static_cast<int>(op.name.size()), op.name.data(), static_cast<int>(op.round.size()),
                  op.round.data());
    return 0;
  }
  char* end = nullptr;
  const long n = argc == 3 ? std::strtol(argv[2], &end, 10) : -1;
  if (argc != 3 || *end != '\0' || n < 0) {
    std::fprintf(stderr, "usage: gr_instr_count <operation> <rounds>; operations:");
    for (const auto& op : operations) std::fprintf(stderr, " %.*s", static_cast<int>(op.name.size()), op.name.data());
    std::fprintf(stderr, "\n");
    return 2;
  }
  for (const auto& op : operations)
    if (op.name == argv[1]) {
      op.run(n);
      return 0;
    }
  std::fprintf(stderr, "gr_instr_count: unknown operation '%s'\n", argv[1]);
  return 2;
}
