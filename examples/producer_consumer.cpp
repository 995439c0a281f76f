// producer_consumer: several producers and consumers sharing one buffered channel.
//
//   producer_consumer [--producers N] [--consumers N] [--items N] [--capacity N]
//
// Each producer sends --items numbers into the channel (each number once, across all producers).
// The consumers read from it with a range-for, which ends when the channel is closed and drained.
// The main task waits for the producers with a gr::wait_group and then closes the channel: nothing
// sent before the close is lost. At the end every consumer's share is printed, with a checksum
// that proves each number arrived exactly once.
//
// gr's scheduler is deterministic (one thread, round-robin), so the output is the same every run.
#include <gr/gr.hpp>

#include <charconv>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

struct options {
  std::int64_t producers = 4;
  std::int64_t consumers = 3;
  std::int64_t items = 1000;  // per producer
  std::int64_t capacity = 16;
};

constexpr const char* usage =
    "usage: producer_consumer [--producers N] [--consumers N] [--items N] [--capacity N]\n"
    "  --producers N  tasks sending numbers (1 to 10000, default 4)\n"
    "  --consumers N  tasks receiving them (1 to 10000, default 3)\n"
    "  --items N      numbers each producer sends (0 to 10000000, default 1000)\n"
    "  --capacity N   the channel's buffer (0 to 1000000, default 16); 0: each send waits for a receiver\n";

// parse: reads the flags ("--name value" or "--name=value") into `opt`; returns an error
// message, empty when all is well.
std::string parse(int argc, char** argv, options& opt) {
  struct flag {
    std::string_view name;
    std::int64_t* value;
    std::int64_t min, max;
  };
  const flag flags[] = {{"--producers", &opt.producers, 1, 10'000},
                        {"--consumers", &opt.consumers, 1, 10'000},
                        {"--items", &opt.items, 0, 10'000'000},
                        {"--capacity", &opt.capacity, 0, 1'000'000}};
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i], text;
    const std::size_t eq = arg.find('=');
    const std::string_view name = arg.substr(0, eq);
    const flag* f = nullptr;
    for (const flag& candidate : flags)
      if (candidate.name == name) f = &candidate;
    if (!f) return "unknown flag '" + std::string(arg) + "'";
    if (eq != std::string_view::npos) {
      text = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      text = argv[++i];
    } else {
      return std::string(name) + " needs a value";
    }
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size())
      return std::string(name) + " needs a whole number, not '" + std::string(text) + "'";
    if (n < f->min || n > f->max)
      return std::string(name) + " must be between " + std::to_string(f->min) + " and " + std::to_string(f->max) +
             ", not " + std::to_string(n);
    *f->value = n;
  }
  if (opt.producers * opt.items > 100'000'000) return "--producers x --items must be at most 100000000";
  return {};
}

// mix: a number's contribution to the checksum. Summing it is order-independent, so the checksum
// does not depend on which consumer got what, only on every number arriving exactly once.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

// share: what one consumer received.
struct share {
  std::uint64_t count = 0;
  std::uint64_t sum = 0;
  std::uint64_t checksum = 0;
};

}  // namespace

int main(int argc, char** argv) {
  options opt;
  if (const std::string error = parse(argc, argv, opt); !error.empty()) {
    std::fprintf(stderr, "producer_consumer: %s\n%s", error.c_str(), usage);
    return 2;
  }
  const auto total = static_cast<std::uint64_t>(opt.producers * opt.items);
  std::printf("%" PRId64 " producers x %" PRId64 " items -> channel of capacity %" PRId64 " -> %" PRId64
              " consumers\n",
              opt.producers, opt.items, opt.capacity, opt.consumers);

  gr::channel<std::uint64_t> numbers(static_cast<std::size_t>(opt.capacity), "numbers");
  gr::wait_group producing(opt.producers, "producers");

  // Producer p sends p * items, p * items + 1, ... : every number from 0 to total - 1 once.
  std::vector<gr::task> producers;
  for (std::int64_t p = 0; p < opt.producers; ++p) {
    producers.push_back(gr::spawn(
        [&, p] {
          for (std::int64_t i = 0; i < opt.items; ++i) numbers.send(static_cast<std::uint64_t>(p * opt.items + i));
          producing.done();
        },
        {.name = "producer " + std::to_string(p)}));
  }

  // Each consumer takes numbers until the channel is closed and drained.
  std::vector<share> shares(static_cast<std::size_t>(opt.consumers));
  std::vector<gr::task> consumers;
  for (std::size_t c = 0; c < shares.size(); ++c) {
    consumers.push_back(gr::spawn(
        [&numbers, &mine = shares[c]] {
          for (std::uint64_t n : numbers) {
            ++mine.count;
            mine.sum += n;
            mine.checksum += mix(n);
            gr::yield();  // stands for the work a real consumer does with each item
          }
        },
        {.name = "consumer " + std::to_string(c)}));
  }

  // The main task is a task too: it blocks here while the others run.
  producing.wait();
  numbers.close();  // no more sends; the consumers drain what is buffered, then their loops end
  for (gr::task& t : consumers) t.join();
  for (gr::task& t : producers) t.join();

  share all;
  for (std::size_t c = 0; c < shares.size(); ++c) {
    std::printf("consumer %zu: %" PRIu64 " items, sum %" PRIu64 "\n", c, shares[c].count, shares[c].sum);
    all.count += shares[c].count;
    all.sum += shares[c].sum;
    all.checksum += shares[c].checksum;
  }
  std::uint64_t expected_checksum = 0;
  for (std::uint64_t n = 0; n < total; ++n) expected_checksum += mix(n);
  const std::uint64_t expected_sum = total == 0 ? 0 : total * (total - 1) / 2;
  std::printf("total: %" PRIu64 " items, sum %" PRIu64 " (expected %" PRIu64 " items, sum %" PRIu64 ")\n", all.count,
              all.sum, total, expected_sum);
  std::printf("checksum: %016" PRIx64 " (expected %016" PRIx64 ")\n", all.checksum, expected_checksum);
  const bool ok = all.count == total && all.sum == expected_sum && all.checksum == expected_checksum;
  std::puts(ok ? "ok: every item arrived exactly once" : "FAILED: items were lost or duplicated");
  return ok ? 0 : 1;
}
