// A small pipeline recorded as a Chrome trace, for check_trace.py (and tools/trace2html):
//
//   source -> channel 'numbers' (unbuffered) -> 2 squarers -> channel 'squares' (capacity 2) -> main
//
// plus a logger the squarers share behind mutex 'log', a watchdog whose recv_for times out, and
// a task blocked forever that main cancels. So the trace holds every kind of event: spawn,
// switch, block on a channel / mutex / join / timer, wake by a task, by a timeout and by a cancel,
// task_cancelled raised, exit.
//
//   gr_trace_pipeline out.json    records with gr::start_chrome_trace / stop_chrome_trace
//   GR_TRACE=out.json gr_trace_pipeline
//                                 records through the environment variable (written at exit)
#include <gr/gr.hpp>

#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc > 1) gr::start_chrome_trace(argv[1]);

  long total = 0;
  {
    gr::channel<int> numbers(0, "numbers");
    gr::channel<long> squares(2, "squares");
    gr::channel<int> never(0, "never");
    gr::mutex log_lock("log");
    std::vector<std::string> log;

    gr::task source = gr::spawn(
        [&] {
          for (int i = 1; i <= 12; ++i) numbers.send(i);
          numbers.close();
        },
        {.name = "source"});
    std::vector<gr::task> squarers;
    for (int k = 0; k < 2; ++k) {
      squarers.push_back(gr::spawn(
          [&, k] {
            for (int v : numbers) {
              {
                std::lock_guard lock(log_lock);
                gr::yield();  // hold the lock across a switch, so the other squarer waits for it
                log.push_back("squarer " + std::to_string(k) + ": " + std::to_string(v));
              }
              squares.send(static_cast<long>(v) * v);
            }
          },
          {.name = "squarer " + std::to_string(k)}));
    }
    gr::task watchdog = gr::spawn([&] { (void)never.recv_for(2ms); }, {.name = "watchdog"});
    gr::task stuck = gr::spawn([&] { (void)never.recv(); }, {.name = "stuck"});

    gr::task closer = gr::spawn(
        [&] {
          for (auto& s : squarers) s.join();
          squares.close();
        },
        {.name = "closer"});
    for (long sq : squares) total += sq;

    source.join();
    closer.join();
    watchdog.join();
    stuck.cancel();
    stuck.join();
  }
  std::printf("gr_trace_pipeline: sum of squares %ld\n", total);
  if (argc > 1 && !gr::stop_chrome_trace()) return 1;
  return total == 650 ? 0 : 1;
}
