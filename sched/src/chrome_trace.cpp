// The Chrome Trace Event writer (see trace.hpp): turns trace events into per-task spans.
//
// Each task is a "thread" row (tid = task id) of its scheduler's "process" (one per thread that
// runs a scheduler). A task is in one state at a time (running, runnable, blocked on <reason>);
// when it leaves that state a complete ("X") event covers the time it spent there. A wake by
// another task is a flow arrow ("s" on the waker's row, "f" on the woken task's) — channel
// hand-offs, unlocks and joins show as arrows. Events are kept in memory and written at the end.
#include "debug_hooks.hpp"

#include <gr/runtime/error.hpp>
#include <gr/sched/trace.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

namespace gr {
namespace {

enum class span : unsigned char {
  none,      // not seen in any event yet
  running,
  runnable,
  blocked,
  done,      // exited: no span open
};

struct track {
  span state = span::none;
  double since = 0;
  std::string label;  // the name of the open span
};

struct chrome_writer {
  std::mutex m;
  std::string path;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::map<const void*, int> pids;
  std::map<std::pair<int, std::uint64_t>, track> tracks;
  std::string events;
  std::uint64_t next_flow = 1;
  bool first = true;
  std::FILE* file = nullptr;  // opened by start_chrome_trace (a bad path fails there, not at exit)
  pid_t owner = ::getpid();   // the process that started the trace (not a forked child)

  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  }

  static std::string esc(std::string_view s) {
    std::string o;
    for (char c : s) {
      if (c == '"' || c == '\\') {
        o += '\\';
        o += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        o += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
      } else {
        o += c;
      }
    }
    return o;
  }

  void add(const std::string& ev) {
    if (!first) events += ",\n";
    first = false;
    events += ev;
  }

  int pid_of(const void* sched) {
    auto [it, fresh] = pids.emplace(sched, static_cast<int>(pids.size()) + 1);
    if (fresh)
      add(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"tid":0,"args":{{"name":"gr scheduler {}"}}}})",
                      it->second, it->second));
    return it->second;
  }

  track& track_of(int pid, std::uint64_t id, std::string_view name) {
    auto [it, fresh] = tracks.try_emplace({pid, id});
    if (fresh) {
      const std::string label = name.empty() ? fmt::format("task #{}", id) : fmt::format("#{} {}", id, name);
      add(fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":"{}"}}}})", pid, id,
                      esc(label)));
      add(fmt::format(R"({{"ph":"M","name":"thread_sort_index","pid":{},"tid":{},"args":{{"sort_index":{}}}}})", pid,
                      id, id));
    }
    return it->second;
  }

  void close(int pid, std::uint64_t id, track& t, double ts) {
    if (t.state == span::none || t.state == span::done) return;
    const char* cat = t.state == span::running ? "running" : t.state == span::runnable ? "runnable" : "blocked";
    add(fmt::format(R"({{"ph":"X","name":"{}","cat":"{}","pid":{},"tid":{},"ts":{:.3f},"dur":{:.3f}}})", esc(t.label),
                    cat, pid, id, t.since, ts - t.since));
    t.state = span::none;
  }

  void enter(int pid, std::uint64_t id, track& t, span s, std::string label, double ts) {
    close(pid, id, t, ts);
    t.state = s;
    t.since = ts;
    t.label = std::move(label);
  }

  void instant(int pid, std::uint64_t id, const std::string& name, double ts) {
    add(fmt::format(R"({{"ph":"i","s":"t","name":"{}","pid":{},"tid":{},"ts":{:.3f}}})", esc(name), pid, id, ts));
  }

  void on_event(const trace_event& e) {
    std::lock_guard lock(m);
    const double ts = now_us();
    const int pid = pid_of(e.scheduler);
    track& t = track_of(pid, e.task, e.task_name);
    using type = trace_event::type;
    switch (e.what) {
      case type::spawn:
        track_of(pid, e.other, e.other_name);
        enter(pid, e.task, t, span::runnable, "runnable", ts);
        break;
      case type::switch_: {
        if (t.state == span::none) enter(pid, e.task, t, span::running, "running", 0.0);  // running since the start
        if (t.state == span::running) enter(pid, e.task, t, span::runnable, "runnable", ts);  // a yield
        track& o = track_of(pid, e.other, e.other_name);
        enter(pid, e.other, o, span::running, "running", ts);
        break;
      }
      case type::block:
        if (t.state == span::none) enter(pid, e.task, t, span::running, "running", 0.0);
        enter(pid, e.task, t, span::blocked, "blocked: " + (e.reason ? describe_wait(*e.reason) : std::string("?")),
              ts);
        break;
      case type::wake:
        enter(pid, e.task, t, span::runnable, "runnable", ts);
        if (e.wake == detail::wake_reason::timeout) {
          instant(pid, e.task, "timeout", ts);
        } else if (e.wake == detail::wake_reason::deadlock) {
          instant(pid, e.task, "deadlock", ts);
        } else {
          const std::uint64_t f = next_flow++;
          track_of(pid, e.other, e.other_name);
          add(fmt::format(R"({{"ph":"s","id":{},"name":"wake","cat":"wake","pid":{},"tid":{},"ts":{:.3f}}})", f, pid,
                          e.other, ts));
          add(fmt::format(R"({{"ph":"f","bp":"e","id":{},"name":"wake","cat":"wake","pid":{},"tid":{},"ts":{:.3f}}})",
                          f, pid, e.task, ts));
        }
        break;
      case type::exit:
        close(pid, e.task, t, ts);
        t.state = span::done;
        instant(pid, e.task, e.error ? "exit (exception)" : "exit", ts);
        break;
      case type::throw_:
        instant(pid, e.task, "task_cancelled raised", ts);
        break;
      case type::cancel:
        instant(pid, e.task, fmt::format("cancel requested by task #{}", e.other), ts);
        break;
    }
  }

  // write: closes every open span at now and writes the file. `try_only`: give up (false) rather
  // than wait if the events are being added to (an abort from inside the hook).
  bool write(bool try_only = false) {
    std::unique_lock lock(m, std::defer_lock);
    if (!try_only)
      lock.lock();
    else if (!lock.try_lock())
      return false;
    const double ts = now_us();
    for (auto& [key, t] : tracks) close(key.first, key.second, t, ts);
    std::FILE* f = std::exchange(file, nullptr);
    if (!f) return false;  // written already
    if (::getpid() != owner) {
      // A forked child's copy: the file (and its offset) is shared with the process that started
      // the trace, which writes it; the child's events would make the JSON invalid.
      std::fclose(f);
      return false;
    }
    std::fprintf(f, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n%s\n]}\n", events.c_str());
    const bool ok = std::fclose(f) == 0;
    if (!ok) std::fprintf(stderr, "gr: cannot write the trace to %s\n", path.c_str());
    return ok;
  }
};

std::mutex g_writer_mutex;
chrome_writer* g_writer = nullptr;  // guarded by g_writer_mutex; its events by its own mutex

void chrome_hook(const trace_event& e, void* user) { static_cast<chrome_writer*>(user)->on_event(e); }

// write_on_abort: the trace so far, when the process is about to die (a gr fatal error, or
// std::terminate: an uncaught deadlock_error, say), which is when it is wanted most. Best effort:
// skipped if the abort came from inside the writer (`wait`: false). Nothing is written twice: the
// writer is dropped (and leaked: the process is ending). `why` ends the message on stderr.
void write_on_abort(bool wait = false, const std::string& why = {}) noexcept {
  std::unique_lock lock(g_writer_mutex, std::defer_lock);
  if (wait)
    lock.lock();
  else if (!lock.try_lock())
    return;
  if (!g_writer) return;
  set_trace_hook(nullptr);
  chrome_writer* w = std::exchange(g_writer, nullptr);
  try {
    if (w->write(!wait)) std::fprintf(stderr, "gr: the Chrome trace so far is in %s%s\n", w->path.c_str(), why.c_str());
  } catch (...) {
  }
}

// Fatal signals: a program that seems to hang is stopped with Ctrl-C or kill, and its trace is the
// one wanted. While a trace records, each of these whose action is still the default (it ends the
// process) gets a handler that only passes the signal's number down a pipe (write(2) is
// async-signal-safe) and puts the default back (SA_RESETHAND: a second signal ends the process at
// once). A thread of ours, started with the first trace, reads it, writes the trace, and sends the
// signal again to the process, which then ends as it would have: whatever the program's threads
// are doing (running tasks, blocked in read() or in a join, or spinning). A handler the program
// installed is left alone, and so is SIGQUIT, whose default writes a core.
constexpr int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP};
int g_signal_pipe[2] = {-1, -1};
pid_t g_messenger_pid = 0;  // the process whose messenger thread reads the pipe (not a fork's child)

extern "C" void on_fatal_signal(int sig) {
  const int saved_errno = errno;
  if (::getpid() != g_messenger_pid) {
    // A forked child shares the pipe with its parent, whose thread would read it: end the child
    // as the signal would have (SA_RESETHAND put the default back).
    ::raise(sig);
  } else {
    const auto b = static_cast<unsigned char>(sig);
    (void)!::write(g_signal_pipe[1], &b, 1);
  }
  errno = saved_errno;
}

// release_fatal_signals: the default action back where our handler is still installed.
void release_fatal_signals() noexcept {
  for (int sig : fatal_signals) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == &on_fatal_signal)
      std::signal(sig, SIG_DFL);
  }
}

// signal_messenger: the thread that answers a fatal signal (see above).
void signal_messenger() noexcept {
  for (;;) {
    unsigned char b = 0;
    const ssize_t n = ::read(g_signal_pipe[0], &b, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n != 1) return;
    const int sig = b;
    std::string why;
    try {
      why = fmt::format(" (signal {}: {})", sig, ::strsignal(sig));
    } catch (...) {
    }
    write_on_abort(true, why);
    // Ended as the signal would have ended it, with the exit status a shell reports for it.
    // Process-directed, so a thread that does not block the signal takes it; a handler the
    // program installed since gets it instead.
    release_fatal_signals();
    ::kill(::getpid(), sig);
  }
}

std::atomic<std::size_t> g_messengers{0};  // 1 once the messenger thread runs (in this process)

bool start_messenger() noexcept {
  if (g_signal_pipe[0] >= 0) {  // a forked child's copies of its parent's pipe, which that reads
    ::close(g_signal_pipe[0]);
    ::close(g_signal_pipe[1]);
    g_signal_pipe[0] = g_signal_pipe[1] = -1;
  }
  if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) return false;
  g_messenger_pid = ::getpid();
  try {
    std::thread(&signal_messenger).detach();
    g_messengers.store(1, std::memory_order_relaxed);
  } catch (...) {
    ::close(g_signal_pipe[0]);
    ::close(g_signal_pipe[1]);
    return false;
  }
  return true;
}

void catch_fatal_signals() noexcept {
  // Once per process (under g_writer_mutex): a forked child has no copy of its parent's thread,
  // so one that records a trace starts its own.
  static bool messenger = false;
  if (g_messenger_pid != ::getpid()) messenger = start_messenger();
  if (!messenger) return;
  for (int sig : fatal_signals) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue;
    struct sigaction sa {};
    sa.sa_handler = &on_fatal_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

std::size_t detail::internal_threads() noexcept {
  // A forked child has none: the thread is its parent's.
  return ::getpid() == g_messenger_pid ? g_messengers.load(std::memory_order_relaxed) : 0;
}

void start_chrome_trace(const std::string& path) {
  std::lock_guard lock(g_writer_mutex);
  if (g_writer) throw error(fmt::format("gr::start_chrome_trace: already recording a trace to {}", g_writer->path));
  std::FILE* f = std::fopen(path.c_str(), "we");  // close-on-exec: not a program's exec'd child's
  if (!f)
    throw error(fmt::format("gr::start_chrome_trace: cannot open {} for writing: {}", path, std::strerror(errno)));
  g_writer = new chrome_writer();
  g_writer->path = path;
  g_writer->file = f;
  set_trace_hook(&chrome_hook, g_writer);
  catch_fatal_signals();
  // Once per process: the hooks stay, and do nothing while no trace is recorded.
  static const bool hooked = [] {
    detail::set_abort_hook([]() noexcept { write_on_abort(); });
    detail::add_terminate_note([]() noexcept { write_on_abort(); });
    return true;
  }();
  (void)hooked;
}

bool stop_chrome_trace() {
  std::lock_guard lock(g_writer_mutex);
  if (!g_writer) return true;
  release_fatal_signals();
  set_trace_hook(nullptr);
  const bool ok = g_writer->write();
  delete g_writer;
  g_writer = nullptr;
  return ok;
}

namespace detail {

void chrome_trace_from_env() noexcept {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* path = std::getenv("GR_TRACE");
    if (!path || !*path) return;
    try {
      start_chrome_trace(path);
      std::atexit([] { stop_chrome_trace(); });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "gr: GR_TRACE: %s\n", e.what());
    }
  });
}

}  // namespace detail
}  // namespace gr
