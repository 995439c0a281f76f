// prime_sieve: the concurrent prime sieve from Go's documentation, with gr tasks and channels.
//
//   prime_sieve [N]        prints the first N primes (default 100)
//
// A generator task sends 2, 3, 4, ... into an unbuffered channel. The main task takes the first
// number that comes out of the chain, which is prime, prints it, and appends a filter task that
// drops its multiples:
//
//   generate -> filter(2) -> filter(3) -> filter(5) -> ... -> main
//
// Every channel is unbuffered, so each number is handed from task to task, one rendezvous per
// link. When N primes are out, the main task cancels the whole chain: each task is blocked in a
// send or a recv, which raises gr::task_cancelled and ends it.
#include <gr/gr.hpp>

#include <charconv>
#include <cstdio>
#include <deque>
#include <string_view>
#include <system_error>
#include <vector>

namespace {

// generate: sends 2, 3, 4, ... to `out`, forever (until cancelled).
void generate(gr::channel<int>& out) {
  for (int i = 2;; ++i) out.send(i);
}

// filter: copies the numbers from `in` to `out`, dropping the multiples of `prime`.
void filter(gr::channel<int>& in, gr::channel<int>& out, int prime) {
  for (int n : in)
    if (n % prime != 0) out.send(n);
}

}  // namespace

int main(int argc, char** argv) {
  int count = 100;
  if (argc > 2) {
    std::fprintf(stderr, "usage: prime_sieve [N]   (prints the first N primes, default 100)\n");
    return 2;
  }
  if (argc == 2) {
    const std::string_view arg = argv[1];
    const auto [end, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), count);
    if (ec != std::errc() || end != arg.data() + arg.size() || count < 1 || count > 10'000) {
      std::fprintf(stderr, "prime_sieve: N must be a whole number from 1 to 10000, not '%s'\n", argv[1]);
      return 2;
    }
  }

  // The links of the chain. A channel is neither copyable nor movable: a deque keeps each one in
  // place as the chain grows.
  std::deque<gr::channel<int>> links;
  std::vector<gr::task> chain;
  gr::channel<int>* tail = &links.emplace_back();
  chain.push_back(gr::spawn([tail] { generate(*tail); }, {.name = "generate"}));

  for (int i = 0; i < count; ++i) {
    const int prime = *tail->recv();  // the first number to get through every filter so far
    std::printf("%d\n", prime);
    gr::channel<int>* in = tail;
    tail = &links.emplace_back();
    chain.push_back(gr::spawn([in, out = tail, prime] { filter(*in, *out, prime); }));
  }

  // Tear the chain down: cancel every task, then wait for each to end.
  for (gr::task& t : chain) t.cancel();
  for (gr::task& t : chain) t.join();
}
