// Debugging support: task dumps, the dump-on-signal flag, the trace hook's dispatch, and the
// process-wide list of schedulers that tools/gdb/gr.py reads.
#include "debug_hooks.hpp"
#include "sched_state.hpp"

#include <gr/sched/dump.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/trace.hpp>

#include <fmt/format.h>

#include <csignal>
#include <mutex>
#include <ostream>
#include <sstream>

#include <sys/syscall.h>
#include <unistd.h>

// The head of the list of live schedulers, linked through sched_state::debug_next. A plain C
// symbol so that a debugger finds it by name, in a live process or a core file.
extern "C" {
gr::detail::sched_state* gr_debug_schedulers = nullptr;
}

namespace gr {
namespace detail {

std::atomic<unsigned> g_debug{0};

namespace {

std::mutex g_registry_mutex;
std::atomic<trace_hook> g_hook{nullptr};
std::atomic<void*> g_hook_user{nullptr};

void write_all(int fd, const std::string& s) noexcept {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w <= 0) return;
    off += static_cast<std::size_t>(w);
  }
}

std::string dump_text() {
  const auto tasks = scheduler::current().snapshot();
  std::string out = fmt::format("gr: {} task(s) on this thread's scheduler\n", tasks.size());
  for (const auto& t : tasks) {
    out += "  ";
    out += scheduler::describe(t);
    out += '\n';
  }
  return out;
}

extern "C" void on_dump_signal(int) { g_debug.fetch_or(debug_dump, std::memory_order_relaxed); }

}  // namespace

void register_scheduler(sched_state& s) noexcept {
  s.os_thread = static_cast<long>(::syscall(SYS_gettid));
  std::lock_guard lock(g_registry_mutex);
  s.debug_next = gr_debug_schedulers;
  gr_debug_schedulers = &s;
}

void unregister_scheduler(sched_state& s) noexcept {
  std::lock_guard lock(g_registry_mutex);
  for (sched_state** p = &gr_debug_schedulers; *p; p = &(*p)->debug_next) {
    if (*p == &s) {
      *p = s.debug_next;
      return;
    }
  }
}

void dump_if_asked() noexcept {
  const unsigned flags = g_debug.load(std::memory_order_relaxed);
  // Not while the thread's tasks are being unwound: what they wait on may be gone with the frames
  // of tasks unwound before them. The request stays for another scheduler.
  if ((flags & debug_dump) && !shutting_down() &&
      (g_debug.fetch_and(~debug_dump, std::memory_order_relaxed) & debug_dump)) {
    try {
      write_all(STDERR_FILENO, dump_text());
    } catch (...) {
    }
  }
}

void debug_event(sched_state& s, trace_event::type what, const task_ctl* task, const task_ctl* other,
                 const wait_reason* reason, wake_reason wake, const std::exception_ptr* error) noexcept {
  const unsigned flags = g_debug.load(std::memory_order_relaxed);
  // At any event, not only a switch: a task woken by its own timer while the others wait runs on
  // without a switch, and the dump would wait until something else happened.
  if (flags & debug_dump) dump_if_asked();
  trace_hook hook = g_hook.load(std::memory_order_acquire);
  if (!(flags & debug_trace) || !hook) return;
  trace_event e{};
  e.what = what;
  e.task = task ? task->id : 0;
  if (task) e.task_name = task->name;
  if (other) {
    e.other = other->id;
    e.other_name = other->name;
  }
  e.reason = reason;
  e.wake = wake;
  e.error = error;
  e.scheduler = &s;
  try {
    hook(e, g_hook_user.load(std::memory_order_relaxed));
  } catch (...) {
    // A hook must not throw into the scheduler; an exception from one is dropped.
  }
}

}  // namespace detail

trace_hook set_trace_hook(trace_hook hook, void* user) noexcept {
  detail::g_hook_user.store(user, std::memory_order_relaxed);
  trace_hook old = detail::g_hook.exchange(hook, std::memory_order_acq_rel);
  if (hook)
    detail::g_debug.fetch_or(detail::debug_trace, std::memory_order_relaxed);
  else
    detail::g_debug.fetch_and(~detail::debug_trace, std::memory_order_relaxed);
  return old;
}

std::string describe_wait(const detail::wait_reason& why) {
  if (!why.verb) return {};
  std::string out = why.verb;
  if (why.describe) {
    out += ' ';
    out += why.describe(why.object);
  } else if (why.kind) {
    out += ' ';
    out += why.kind;
    if (why.name && !why.name->empty())
      out += fmt::format(" '{}'", *why.name);
    else if (why.object)
      out += fmt::format(" {}", why.object);
    if (std::string_view(why.kind) == "task" && why.object)
      out += fmt::format(" (#{})", static_cast<const detail::task_ctl*>(why.object)->id);
  }
  return out;
}

void dump(std::ostream& os) { os << detail::dump_text() << std::flush; }

void dump(int fd) { detail::write_all(fd, detail::dump_text()); }

void dump_on_signal(int sig) {
  struct sigaction sa {};
  sa.sa_handler = &detail::on_dump_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(sig, &sa, nullptr) != 0)
    throw error(fmt::format("gr::dump_on_signal: cannot install a handler for signal {}", sig));
}

}  // namespace gr
