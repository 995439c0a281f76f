#include <gr/runtime/error.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>

namespace gr::detail {
namespace {
std::atomic<abort_hook> g_abort_hook{nullptr};

// before_abort: the hook, once (exchanged out, so an abort inside it does not run it again), then
// stdout flushed: abort() flushes nothing, and what the program printed before the error (buffered
// when stdout is a pipe or file) would be lost with it. Only if its lock is free: another thread
// holding it (blocked writing to a full pipe, say) must not turn the abort into a hang.
void before_abort() noexcept {
  if (abort_hook fn = g_abort_hook.exchange(nullptr)) fn();
  if (::ftrylockfile(stdout) == 0) {
    ::fflush_unlocked(stdout);
    ::funlockfile(stdout);
  }
}
}  // namespace

abort_hook set_abort_hook(abort_hook fn) noexcept { return g_abort_hook.exchange(fn); }

namespace {
constexpr int max_notes = 4;
std::atomic<abort_hook> g_notes[max_notes]{};
std::terminate_handler g_previous_terminate = nullptr;

[[noreturn]] void on_terminate() noexcept {
  for (auto& note : g_notes)
    if (abort_hook fn = note.exchange(nullptr)) fn();  // once: a terminate inside a note skips it
  if (g_previous_terminate) g_previous_terminate();
  std::abort();
}
}  // namespace

void add_terminate_note(abort_hook note) noexcept {
  static const bool installed = [] {  // once per process
    g_previous_terminate = std::set_terminate(&on_terminate);
    return true;
  }();
  (void)installed;
  for (auto& slot : g_notes) {
    abort_hook empty = nullptr;
    if (slot.compare_exchange_strong(empty, note)) return;
  }
}

void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept {
  std::fprintf(stderr, "gr: %s:%d: assertion `%s` failed: %s\n", file, line, expr, msg);
  std::fflush(stderr);
  before_abort();
  std::abort();
}

void fatal(const std::string& msg) noexcept {
  std::fprintf(stderr, "gr: %s\n", msg.c_str());
  std::fflush(stderr);
  before_abort();
  std::abort();
}

}  // namespace gr::detail
