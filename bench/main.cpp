// gr_bench's main: runs the benchmarks as Google Benchmark's own main would (same flags, same
// console, JSON or CSV output, --benchmark_out honoured), collects each result on the way, and
// ends with two tables:
//   - ratios: each gr benchmark's time per item against its floor (what it is built on) and its
//     peer (what users would otherwise pick), with the target from DESIGN.md;
//   - counters: values a benchmark reports as counters (memory per greenlet...) with their target.
//
// Time per item is real (wall-clock) nanoseconds per item, an item being what the benchmark passes
// to SetItemsProcessed (one one-way switch, one create+destroy, one hand-off...). With
// --benchmark_repetitions the median aggregate is used; without, the median of the runs seen.
// A row whose benchmark was not run (--benchmark_filter) is left out; a floor or peer that was not
// run shows as "-".
//
// To add a row, append a line to ratio_rows or counter_rows below. Names are the benchmark's
// function name plus its arguments, without /real_time, /iterations:N or /repeats:N
// (e.g. "BM_Channel_PingPong/cap:0").
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

struct ratio_row {
  const char* bench;   // the gr benchmark
  const char* floor;   // what it is built on (nullptr: none)
  const char* peer;    // what it competes with (nullptr: none)
  const char* target;  // DESIGN.md's target, as text
};

// clang-format off
const ratio_row ratio_rows[] = {
  // bench                        floor                   peer                           target
  {"BM_Greenlet_Switch",          "BM_Fcontext_Switch",   "BM_BoostContextFiber_Switch", "<= 1.5x floor"},
  {"BM_Greenlet_Switch",          "BM_Fcontext_Switch",   "BM_Thread_PingPong",          "(vs std::thread hand-off)"},
  {"BM_Greenlet_CreateDestroy",   nullptr,                nullptr,                       "-"},
  {"BM_Sched_Yield",              "BM_Fcontext_Switch",   "BM_BoostFiber_Yield",         "<= 2.5x floor"},
  {"BM_Sched_YieldMany/tasks:1024", "BM_Fcontext_Ring/contexts:1024", "BM_BoostFiber_YieldMany/tasks:1024", ">= 80M/s (<= 12.5 ns)"},
  {"BM_Sched_YieldMany/tasks:16384", "BM_Fcontext_Ring/contexts:16384", "BM_BoostFiber_YieldMany/tasks:16384", ">= 40M/s (<= 25 ns)"},
  {"BM_Sched_SpawnJoin",          nullptr,                "BM_BoostFiber_SpawnJoin",     "<= 0.25x peer"},
  {"BM_Channel_PingPong/cap:0",   "BM_Sched_Yield",       "BM_BoostFiber_PingPong",      "<= 0.25x peer"},
  {"BM_Channel_Stream/cap:1024",  nullptr,                "BM_BoostFiber_Stream/cap:1024", "<= 0.5x peer"},
  {"BM_Select_PingPong",          "BM_Channel_PingPong/cap:0", nullptr,                  "< 40 ns"},
  {"BM_Sched_Yield_TraceHook",    "BM_Sched_Yield",       nullptr,                       "(cost of a trace hook)"},
};

struct counter_row {
  const char* bench;
  const char* counter;
  const char* unit;
  const char* target;
};

const counter_row counter_rows[] = {
  // bench                  counter                unit          target
  {"BM_Greenlet_Million",   "greenlets",           "",           "1,000,000 live at once"},
  {"BM_Greenlet_Million",   "KiB_per_greenlet",    "KiB",        "<= 5 KiB per blocked task"},
  {"BM_Greenlet_Million",   "KiB_per_guarded",     "KiB",        "-"},
  {"BM_Greenlet_Million",   "KiB_per_slab",        "KiB",        "-"},
  {"BM_Greenlet_Million",   "guarded",             "stacks",     "-"},
  {"BM_Greenlet_Million",   "slab",                "stacks",     "-"},
  {"BM_Greenlet_Million",   "destroy_ns",          "ns",         "-"},
  {"BM_Sched_BlockedMemory/stack_kib:0",  "KiB_per_task", "KiB", "<= 5 KiB per blocked task"},
  {"BM_Sched_BlockedMemory/stack_kib:16", "KiB_per_task", "KiB", "<= 5 KiB per blocked task"},
  {"BM_BoostFiber_BlockedMemory",         "KiB_per_task", "KiB", "(peer)"},
};
// clang-format on

using benchmark::BenchmarkReporter;

// result: what the tables need of one benchmark.
struct result {
  double ns_per_item = 0;  // per item if it set items processed, else per iteration
  bool per_item = false;
  benchmark::UserCounters counters;
};

// row_key: the benchmark's name without the run-shape suffixes (see the file comment).
std::string row_key(const BenchmarkReporter::Run& run) {
  const auto& n = run.run_name;
  std::string key = n.function_name;
  for (const std::string* part : {&n.args, &n.threads})
    if (!part->empty()) key += "/" + *part;
  return key;
}

result measure(const BenchmarkReporter::Run& run) {
  result r;
  r.counters = run.counters;
  const double to_ns = 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
  const double real_ns_per_iter = run.GetAdjustedRealTime() * to_ns;
  r.ns_per_item = real_ns_per_iter;
  auto ips = run.counters.find("items_per_second");
  if (ips == run.counters.end() || ips->second.value <= 0) return r;
  r.per_item = true;
  if (!run.run_name.time_type.empty()) {
    // UseRealTime / UseManualTime: the rate is already per wall-clock second.
    r.ns_per_item = 1e9 / ips->second.value;
  } else {
    // The rate is per CPU second: recover the items per iteration, then divide the real time.
    const double items_per_iter = ips->second.value * run.GetAdjustedCPUTime() * to_ns / 1e9;
    if (items_per_iter > 0) r.ns_per_item = real_ns_per_iter / items_per_iter;
  }
  return r;
}

// collecting_reporter: forwards everything to the display reporter the flags asked for (console
// by default) and keeps each benchmark's result for the tables.
class collecting_reporter : public BenchmarkReporter {
public:
  explicit collecting_reporter(BenchmarkReporter* display) : display_(display) {}

  bool ReportContext(const Context& context) override { return display_->ReportContext(context); }

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred || run.report_big_o || run.report_rms) continue;
      entry& e = entries_[row_key(run)];
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") e.median = measure(run);
      } else {
        e.samples.push_back(measure(run));
      }
    }
    display_->ReportRuns(runs);
  }

  void Finalize() override { display_->Finalize(); }

  // find: the benchmark's median result, if it ran.
  std::optional<result> find(const char* name) const {
    if (!name) return std::nullopt;
    auto it = entries_.find(name);
    if (it == entries_.end()) return std::nullopt;
    const entry& e = it->second;
    if (e.median) return e.median;
    if (e.samples.empty()) return std::nullopt;
    std::vector<result> s = e.samples;
    std::sort(s.begin(), s.end(), [](const result& a, const result& b) { return a.ns_per_item < b.ns_per_item; });
    return s[s.size() / 2];
  }

private:
  struct entry {
    std::optional<result> median;
    std::vector<result> samples;
  };
  BenchmarkReporter* display_;
  std::map<std::string, entry> entries_;
};

std::string fmt_ns(const std::optional<result>& r) {
  if (!r) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", r->ns_per_item);
  return buf;
}

std::string fmt_ratio(const std::optional<result>& num, const std::optional<result>& den) {
  if (!num || !den || den->ns_per_item <= 0) return "-";
  const double r = num->ns_per_item / den->ns_per_item;
  char buf[64];
  if (r >= 0.1)
    std::snprintf(buf, sizeof buf, "%.2fx", r);
  else
    std::snprintf(buf, sizeof buf, "1/%.0fx", 1 / r);  // e.g. a switch against a thread hand-off
  return buf;
}

void print_tables(const collecting_reporter& rep, std::FILE* out) {
  // Column widths from the rows that will be printed.
  int wb = 9, wf = 5, wp = 4;  // "benchmark", "floor", "peer"
  auto grow = [](int& w, const char* s) { w = std::max(w, static_cast<int>(std::string(s ? s : "-").size())); };
  for (const ratio_row& row : ratio_rows) {
    if (!rep.find(row.bench)) continue;
    grow(wb, row.bench);
    grow(wf, row.floor);
    grow(wp, row.peer);
  }
  bool header = false;
  for (const ratio_row& row : ratio_rows) {
    const auto bench = rep.find(row.bench);
    if (!bench) continue;
    if (!header) {
      std::fprintf(out, "\nratios (real ns per item, medians)\n");
      std::fprintf(out, "%-*s %10s  %-*s %10s %8s  %-*s %10s %8s  %s\n", wb, "benchmark", "ns/item", wf, "floor",
                   "ns/item", "x floor", wp, "peer", "ns/item", "x peer", "target");
      header = true;
    }
    const auto floor = rep.find(row.floor);
    const auto peer = rep.find(row.peer);
    std::fprintf(out, "%-*s %10s  %-*s %10s %8s  %-*s %10s %8s  %s\n", wb, row.bench, fmt_ns(bench).c_str(), wf,
                 row.floor ? row.floor : "-", fmt_ns(floor).c_str(), fmt_ratio(bench, floor).c_str(), wp,
                 row.peer ? row.peer : "-", fmt_ns(peer).c_str(), fmt_ratio(bench, peer).c_str(), row.target);
  }

  int wc = 9, wn = 7;  // "benchmark", "counter"
  for (const counter_row& row : counter_rows) {
    if (!rep.find(row.bench)) continue;
    grow(wc, row.bench);
    grow(wn, row.counter);
  }
  header = false;
  for (const counter_row& row : counter_rows) {
    const auto bench = rep.find(row.bench);
    if (!bench) continue;
    auto c = bench->counters.find(row.counter);
    if (c == bench->counters.end()) continue;
    if (!header) {
      std::fprintf(out, "\ncounters\n%-*s %-*s %14s %-8s %s\n", wc, "benchmark", wn, "counter", "value", "unit",
                   "target");
      header = true;
    }
    std::fprintf(out, "%-*s %-*s %14.2f %-8s %s\n", wc, row.bench, wn, row.counter, c->second.value, row.unit,
                 row.target);
  }
  std::fflush(out);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The display reporter --benchmark_format asks for (owned by the library).
  BenchmarkReporter* display = benchmark::CreateDefaultDisplayReporter();
  collecting_reporter rep(display);
  benchmark::RunSpecifiedBenchmarks(&rep);
  // Keep JSON or CSV on stdout parseable: the tables go to stderr unless the output is the console.
  std::fflush(stdout);
  print_tables(rep, dynamic_cast<benchmark::ConsoleReporter*>(display) ? stdout : stderr);
  benchmark::Shutdown();
  return 0;
}
