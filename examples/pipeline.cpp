// pipeline: fan-out and fan-in with select, a timeout and cancellation.
//
//                      +--> worker 0 --results[0]--+
//   generator --jobs-->+--> worker 1 --results[1]--+--> merger (the main task: a select)
//                      +--> worker 2 --results[2]--+
//
// The generator hands out jobs 1..12 over one unbuffered channel; whichever worker is free takes
// the next one (fan-out). Job n takes n x 10 ms, except job 9, which hangs: a stuck stage. Each
// worker sends its results on its own channel, and the merger waits on all three at once with a
// select (fan-in), together with a deadline case: when no result has come for 100 ms it reports
// a stall, and at the 500 ms deadline it gives up and cancels every stage with task::cancel().
// A cancelled task raises gr::task_cancelled in the call it is blocked in, so the stuck worker
// wakes from its endless job and every stage unwinds cleanly.
//
// Time is a gr::virtual_clock: the scheduler jumps straight to the next timer when every task
// waits, so the program runs instantly and prints the same timeline every run.
#include <gr/gr.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct result {
  int job;
  int value;
  int worker;
};

constexpr int job_count = 12;
constexpr int hung_job = 9;

// ms: the virtual time since the start, in milliseconds.
long long ms() { return std::chrono::duration_cast<std::chrono::milliseconds>(gr::now() - gr::time_point{}).count(); }

void generator(gr::channel<int>& jobs) {
  for (int job = 1; job <= job_count; ++job) jobs.send(job);
  jobs.close();  // the workers' loops end once the jobs run out
}

void worker(int id, gr::channel<int>& jobs, gr::channel<result>& out) {
  int current = 0;
  try {
    for (int job : jobs) {
      current = job;
      gr::sleep_for(job == hung_job ? std::chrono::hours(1) : job * 10ms);  // the work
      out.send({job, job * job, id});
      current = 0;
    }
    out.close();  // tells the merger this worker is done
  } catch (const gr::task_cancelled&) {
    if (current)
      std::printf("[%4lld ms] worker %d cancelled in the middle of job %d\n", ms(), id, current);
    else
      std::printf("[%4lld ms] worker %d cancelled while idle\n", ms(), id);
    throw;  // let the cancellation end the task
  }
}

}  // namespace

int main() {
  gr::virtual_clock clock;
  gr::scheduler::current().set_clock(clock);

  gr::channel<int> jobs(0, "jobs");
  std::array<gr::channel<result>, 3> results;
  std::vector<gr::task> stages;
  stages.push_back(gr::spawn([&] { generator(jobs); }, {.name = "generator"}));
  for (int w = 0; w < 3; ++w)
    stages.push_back(gr::spawn([&, w] { worker(w, jobs, results[w]); }, {.name = "worker " + std::to_string(w)}));

  // The merger. A worker whose channel is closed gets its case pointed at `never`, a channel
  // nobody uses, so that case cannot fire again (Go's nil channel).
  gr::channel<result> never;
  std::array<gr::channel<result>*, 3> in{&results[0], &results[1], &results[2]};
  int open = 3, received = 0, sum = 0;
  std::vector<bool> done(job_count + 1, false);
  const gr::time_point deadline = gr::now() + 500ms;
  gr::time_point last = gr::now();
  bool gave_up = false;

  auto on_result = [&](int w) {
    return [&, w](std::optional<result> r) {
      if (!r) {
        in[w] = &never;
        --open;
        return;
      }
      std::printf("[%4lld ms] job %2d -> %3d  (worker %d)\n", ms(), r->job, r->value, r->worker);
      ++received;
      sum += r->value;
      done[r->job] = true;
      last = gr::now();
    };
  };
  auto on_timeout = [&] {
    if (gr::now() >= deadline) {
      std::printf("[%4lld ms] deadline: cancelling the pipeline\n", ms());
      gave_up = true;
    } else {
      std::printf("[%4lld ms] no result for 100 ms: a stage is stalled\n", ms());
      last = gr::now();
    }
  };
  while (open > 0 && !gave_up) {
    gr::select(gr::recv_case(*in[0], on_result(0)), gr::recv_case(*in[1], on_result(1)),
               gr::recv_case(*in[2], on_result(2)), gr::deadline_case(std::min(deadline, last + 100ms), on_timeout));
  }

  // Cancel whatever still runs (nothing, if every worker finished), then wait for each stage.
  for (gr::task& t : stages) t.cancel();
  for (gr::task& t : stages) t.join();

  std::string missing;
  for (int job = 1; job <= job_count; ++job)
    if (!done[job]) missing += " " + std::to_string(job);
  std::printf("%d of %d jobs done, results sum %d; missing:%s\n", received, job_count, sum,
              missing.empty() ? " none" : missing.c_str());
  gr::scheduler::current().reset_clock();
}
