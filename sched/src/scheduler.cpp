// The scheduler: a ready queue, a timer heap and direct task-to-task switches.
//
// Invariants (checked with GR_DEBUG_ASSERT where cheap):
//   - Exactly one task is `running`: sched.current. Its greenlet is greenlet::current().
//   - A `runnable` task is in the ready policy (or is the target of the switch in progress); a
//     `blocked` task is in no ready queue, and is in the timer heap iff timer_index != npos.
//   - wake() only moves `blocked` tasks, so the first wake reason wins and a task is never queued
//     twice.
//   - The main task never finishes. When nothing is runnable and no timer can fire, the main task
//     is blocked; the deadlock is delivered to it (wake_reason::deadlock).
//   - sched.zombie is a finished task whose stack nobody freed yet (it could not free itself: it
//     was still on that stack). The next task to resume through switch_task frees it; a task that
//     resumes straight into its caller (yield's greenlet::yield_transfer) runs no code there, so
//     finish_task, yield and snapshot() free a leftover zombie too before anything can see it.
#include "sched_state.hpp"

#include "debug_hooks.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/runtime/detail/sanitizer.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait.hpp>

#include <fmt/format.h>

#include <cxxabi.h>

#include <cstdio>
#include <exception>
#include <vector>

#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

namespace gr {
namespace detail {
namespace {


void shutdown(sched_state& s) noexcept;
void leave_at_exit(sched_state& s) noexcept;

// process_exiting: the thread-locals being destroyed are the main thread's, so the process is in
// exit() (main() returned, or exit() was called). Other threads' end while the process goes on.
bool process_exiting() noexcept { return ::syscall(SYS_gettid) == ::getpid(); }

struct sched_owner {
  sched_state* s = nullptr;
  ~sched_owner() {
    if (!s) return;
    // A task or greenlet still running as the thread-locals go: exit() was called from it, on
    // whichever thread: the process is exiting too, on that stack.
    if (process_exiting() || greenlet::current() != s->main.gl) {
      leave_at_exit(*s);  // the state stays, and tls_sched with it
      return;
    }
    shutdown(*s);
    unregister_scheduler(*s);
    delete s;
    tls_sched = nullptr;
  }
};

}  // namespace

constinit thread_local sched_head* tls_sched __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// note_task_cancelled: std::terminate with gr::task_cancelled in flight: it escaped a destructor
// or a noexcept function, a blocking call in a destructor while its task unwinds from a cancel
// (or from its thread's or the process's end) having raised again, the trap the README describes.
void note_task_cancelled() noexcept {
  if (!terminating_with<task_cancelled>() || !tls_sched) return;
  try {
    const sched_state& s = *static_cast<sched_state*>(tls_sched);
    const std::string msg = fmt::format(
        "gr: gr::task_cancelled escaped a destructor or a noexcept function in {}: a blocking call there "
        "raises it again while the task unwinds from {}; catch gr::task_cancelled around that call in the "
        "destructor, or hand a last message over with try_send\n",
        describe_waiting_task(*s.current),
        s.left_at_exit ? "the process's exit" : s.shutting_down ? "its thread's end" : "its cancel");
    std::fputs(msg.c_str(), stderr);
  } catch (...) {
  }
}

[[gnu::cold, gnu::noinline]] sched_state& init_sched() {
  greenlet* root = greenlet::root();  // first, so the greenlet layer's thread state outlives ours
  prepare_thread_stacks();            // and the stack pool, which shutdown() gives stacks back to
  if (greenlet::current() != root)
    throw error(fmt::format("gr: the scheduler must first be used from the thread's root greenlet, not from {}",
                            greenlet::current()->describe()));
  static const bool noted = (add_terminate_note(&note_task_cancelled), true);  // once per process
  (void)noted;
  static thread_local sched_owner owner;
  owner.s = new sched_state();
  tls_sched = owner.s;
  register_scheduler(*owner.s);
  chrome_trace_from_env();
  return *owner.s;
}

}  // namespace

sched_state::sched_state() {
  main.gl = greenlet::root();
  main.sched = this;
  main.state = task_state::running;
  main.is_main = true;
  main.refs = 1;
  main.name = "main";
  current = &main;
  all_tail = &main;
  last_now = clk->now();
  rr.reserve(1);  // the main task's slot; launch() reserves each spawned task's
  // wake() compares a task's sched_state* with tls_sched, a sched_head*, as addresses.
  GR_ASSERT(static_cast<void*>(static_cast<sched_head*>(this)) == static_cast<void*>(this),
            "sched_state's sched_head is not at its start");
}

sched_state& init_this_sched() { return init_sched(); }

namespace {

// ---- timers: a binary min-heap on (deadline, arm order) ----------------------------------------

bool timer_before(const task_ctl* a, const task_ctl* b) noexcept {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->timer_seq < b->timer_seq);
}

void heap_set(std::vector<task_ctl*>& h, std::size_t i, task_ctl* t) noexcept {
  h[i] = t;
  t->timer_index = i;
}

void sift_up(std::vector<task_ctl*>& h, std::size_t i) noexcept {
  task_ctl* t = h[i];
  while (i > 0) {
    std::size_t p = (i - 1) / 2;
    if (!timer_before(t, h[p])) break;
    heap_set(h, i, h[p]);
    i = p;
  }
  heap_set(h, i, t);
}

void sift_down(std::vector<task_ctl*>& h, std::size_t i) noexcept {
  task_ctl* t = h[i];
  const std::size_t n = h.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timer_before(h[c + 1], h[c])) ++c;
    if (!timer_before(h[c], t)) break;
    heap_set(h, i, h[c]);
    i = c;
  }
  heap_set(h, i, t);
}

void timer_arm(sched_state& s, task_ctl* t, time_point deadline) {
  t->deadline = deadline;
  t->timer_seq = s.timer_order++;
  s.timers.push_back(t);  // amortised: the vector keeps its capacity
  sift_up(s.timers, s.timers.size() - 1);
}

void timer_remove(sched_state& s, task_ctl* t) noexcept {
  auto& h = s.timers;
  const std::size_t i = t->timer_index;
  GR_DEBUG_ASSERT(i < h.size() && h[i] == t, "timer heap index out of date");
  t->timer_index = task_ctl::npos;
  task_ctl* last = h.back();
  h.pop_back();
  if (last == t) return;
  heap_set(h, i, last);
  sift_up(h, i);
  sift_down(h, last->timer_index);
}

// fire_expired: wakes every task whose deadline has passed, in deadline order. Never inlined:
// inlined into the flattened park_now, its heap code made every park save six registers; and
// yield() must keep no local whose address escapes so its last call stays a tail call.
[[gnu::noinline]] void fire_expired(sched_state& s) {
  const time_point now = s.clk->now();
  s.last_now = now;
  while (!s.timers.empty() && s.timers.front()->deadline <= now) {
    task_ctl* t = s.timers.front();
    timer_remove(s, t);
    wake(t, wake_reason::timeout);
  }
}

// ---- reports -------------------------------------------------------------------------------------

}  // namespace

std::string task_label(const task_ctl& t) {
  if (t.is_main) return "the main task";
  return t.name.empty() ? fmt::format("task #{}", t.id) : fmt::format("task #{} '{}'", t.id, t.name);
}

namespace {

std::string where_of(const task_ctl& t) {
  if (t.is_main || !t.spawned_at.file_name() || !*t.spawned_at.file_name()) return {};
  std::string_view f = t.spawned_at.file_name();
  return fmt::format("{}:{}", f, t.spawned_at.line());
}

std::string blocked_lines(sched_state& s, bool only_blocked) {
  std::string out;
  for (task_ctl* t = &s.main; t; t = t->all_next) {
    if (only_blocked && t->state != task_state::blocked) continue;
    if (t->state == task_state::done) continue;
    out += "  ";
    out += scheduler::describe(info_of(*t));
    out += '\n';
  }
  return out;
}

// forced_unwind_in_task: a task called pthread_exit (or its thread was cancelled): the unwinding
// cannot leave the task's stack, and swallowing it makes glibc abort with a bare "FATAL:
// exception not rethrown".
[[noreturn, gnu::cold, gnu::noinline]] void forced_unwind_in_task(const task_ctl& t) noexcept {
  fatal(fmt::format("{} called pthread_exit (or was cancelled by pthread_cancel): a thread cannot end from inside a "
                    "task, whose stack is not the thread's; end the task, and the thread from its own function",
                    describe_waiting_task(t)));
}

// count_threads: how many threads the process runs (0 if /proc cannot tell).
std::size_t count_threads() noexcept {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

// declare_deadlock: nothing can run again. Records the report and hands the main task the news.
// Cold and out of line: inlined, its string work made pick_next (on every park) save and restore
// six registers and a stack frame.
[[gnu::cold, gnu::noinline]] task_ctl* declare_deadlock(sched_state& s) {
  GR_ASSERT(s.main.state == task_state::blocked, "deadlock detected while the main task is not blocked");
  std::string report = "gr: deadlock: every task is blocked and nothing can wake one\n";
  report += blocked_lines(s, true);
  if (!s.timers.empty())
    report += "  (timers are pending, but the scheduler's clock cannot advance by itself: a manual_clock moves "
              "only when the program advances it)\n";
  if (const std::size_t threads = count_threads(), ours = internal_threads() + 1; threads > ours)
    report += fmt::format("  (the process runs {} other thread(s): a task is woken only by its own thread; a send, "
                          "close, unlock or notify from another thread does not reach it, and is a bug)\n",
                          threads - ours);
  s.deadlock_report = std::move(report);
  task_ctl* m = &s.main;
  if (m->timer_index != task_ctl::npos) timer_remove(s, m);
  // The main task wakes, woken by nobody: traces show the deadlock where its blocked span ends.
  GR_DEBUG_EVENT(s, trace_event::type::wake, m, nullptr, m->waiting, wake_reason::deadlock, nullptr);
  m->wake = wake_reason::deadlock;
  m->state = task_state::runnable;
  return m;
}

// idle_wait: the thread waits on the clock until `tp` (false: the clock cannot get there by
// itself). Every idle wait goes through here: a dump_on_signal signal may have cut it short, and
// the dump is printed on the way out.
bool idle_wait(sched_state& s, time_point tp) {
  const bool got_there = s.clk->wait_until(tp);
  if (debug_hooked()) dump_if_asked();
  return got_there;
}

// wait_for_next: pick_next's idle path: nothing is ready, so wait for the earliest timer (or
// declare the deadlock) until some task is. Out of line: inlined into the flattened park_now,
// the inlined clock wait made every park load four constants it never used.
[[gnu::noinline]] task_ctl* wait_for_next(sched_state& s) {
  for (;;) {
    if (s.timers.empty() || !idle_wait(s, s.timers.front()->deadline)) return declare_deadlock(s);
    fire_expired(s);
    if (task_ctl* t = s.pop_ready()) return t;
  }
}

// pick_next: the task to run after the current one blocks or ends. Waits for timers when nothing
// is ready; never returns null (a deadlock returns the main task).
inline task_ctl* pick_next(sched_state& s) {
  if (!s.timers.empty()) fire_expired(s);
  if (task_ctl* t = s.pop_ready()) [[likely]]
    return t;
  return wait_for_next(s);
}

void unlink_task(sched_state& s, task_ctl* t) noexcept {
  if (t->all_prev) t->all_prev->all_next = t->all_next;
  if (t->all_next)
    t->all_next->all_prev = t->all_prev;
  else
    s.all_tail = t->all_prev;
  t->all_prev = t->all_next = nullptr;
}

void destroy_task(task_ctl* t) noexcept {
  if (t->sched)
    unlink_task(*t->sched, t);
  else if (!t->is_main)
    adopt_stack(t->memory);  // its thread ended (shutdown() disowned it): the stack becomes ours
  t->destroy(t, frame_part::all);
}

void reap(sched_state& s) noexcept { destroy_task(std::exchange(s.zombie, nullptr)); }

// resumed_by_hand: a waiting task came back from its switch while the scheduler runs another:
// something switched into its greenlet by hand (greenlet::switch_to, kill, throw_in or inject,
// on a greenlet that greenlet::current() returned inside a task, or on the root while the main
// task waits).
[[noreturn, gnu::cold, gnu::noinline]] void resumed_by_hand(const sched_state& s, const task_ctl& t) noexcept {
  fatal(fmt::format("{} was resumed by a greenlet switch (switch_to, kill, throw_in or inject by hand), not by "
                    "its scheduler (whose current task is {}): the greenlet a task runs on, the thread's root for "
                    "the main task, is the scheduler's to switch while the task waits{}",
                    task_label(t), task_label(*s.current),
                    t.is_main ? ". A greenlet made with no parent has the thread's root as its parent and switches "
                                "there when it ends: inside a task, make it with gr::greenlet::current() as parent"
                              : ""));
}

// switch_task: from the running task `from` to `to`; returns when `from` runs again. Reports the
// switch to the debugging hooks if `Traced` (park_now asks them once for the block and the
// switch: see park_traced).
template <bool Traced = true>
void switch_task(sched_state& s, task_ctl* from, task_ctl* to) {
  to->state = task_state::running;
  if (to == from) return;
  if constexpr (Traced) GR_DEBUG_EVENT(s, trace_event::type::switch_, from, to, nullptr, wake_reason::none, nullptr);
  ++to->switches;
  s.current = to;
  try {
    greenlet::transfer(from->gl, to->gl, nullptr);
  } catch (...) {
    // Raised at the resume point: a kill(), throw_in() or failed inject() by hand does that too.
    if (s.current != from) resumed_by_hand(s, *from);
    throw;
  }
  if (s.current != from) [[unlikely]]
    resumed_by_hand(s, *from);
  if (s.zombie) [[unlikely]]
    reap(s);
}

// type_name: a type's name as source spells it (demangled).
std::string type_name(const std::type_info* t) {
  if (!t) return "?";
  int status = 0;
  char* n = abi::__cxa_demangle(t->name(), nullptr, nullptr, &status);
  std::string out = status == 0 && n ? n : t->name();
  std::free(n);
  return out;
}

// exception_text: "std::runtime_error: what()" (Python's "ValueError: ..."), or for a thrown
// value of another type "an exception of type int (not derived from std::exception)".
std::string exception_text(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return type_name(&typeid(x)) + ": " + x.what();
  } catch (...) {
    return "an exception of type " + type_name(abi::__cxa_current_exception_type()) +
           " (not derived from std::exception)";
  }
}

// report_unjoined: runs inside finish_task (on the dying task's stack) or task::detach (noexcept),
// where nothing may escape: an exception out of the user's handler is reported and dropped.
// `s`: the task's scheduler, whose handler (if any) gets the report; null once its thread has
// ended (a handle dropped later, elsewhere): then stderr does.
void report_unjoined(sched_state* s, task_ctl& t) noexcept {
  t.exception_taken = true;
  try {
    task_info info = info_of(t);
    if (s && s->unjoined) {
      try {
        s->unjoined(info, t.exception);
        return;
      } catch (...) {
        std::fprintf(stderr, "gr: the unjoined-exception handler threw: %s\n",
                     exception_text(std::current_exception()).c_str());
      }
    }
    // The format scheduler.hpp documents for set_unjoined_handler.
    const std::string who = info.name.empty()
                                ? fmt::format("task #{} (spawned at {})", info.id, info.spawned_at)
                                : fmt::format("task '{}' (#{}, spawned at {})", info.name, info.id, info.spawned_at);
    std::fprintf(stderr, "gr: %s ended with an exception nobody joined: %s\n", who.c_str(),
                 exception_text(t.exception).c_str());
  } catch (...) {
    std::fputs("gr: a task ended with an exception nobody joined (no memory to describe it)\n", stderr);
  }
}

// release_ref: one holder (the running task or the handle) lets go.
void release_ref(task_ctl* t) noexcept {
  if (--t->refs == 0) destroy_task(t);
}

// ended_holding_mutex: a task ended owning a gr::mutex. Nothing can unlock it now (only the owner
// may), so its waiters would wait forever, and the mutex would name a freed task as its owner.
[[noreturn, gnu::cold, gnu::noinline]] void ended_holding_mutex(const task_ctl& t) noexcept {
  fatal(fmt::format("{} (spawned at {}) ended {}while holding {} gr::mutex lock(s), which nothing can unlock now; "
                    "unlock before the task ends (std::unique_lock or std::lock_guard do it on every path)",
                    task_label(t), where_of(t),
                    t.exception ? fmt::format("by an exception ({}) ", exception_text(t.exception))
                    : t.ended_by_cancel ? "by cancellation "
                                        : "",
                    t.mutexes_held));
}

// finish_task: the task's function is over. Wakes its joiners, picks the next task and makes it
// the greenlet's parent, so the greenlet's death switches straight to it.
void finish_task(sched_state& s, task_ctl& t) {
  if (s.zombie) [[unlikely]]
    reap(s);  // the one before: its successor resumed straight into its caller
  if (t.mutexes_held) [[unlikely]]
    ended_holding_mutex(t);
  GR_DEBUG_EVENT(s, trace_event::type::exit, &t, nullptr, nullptr, wake_reason::none,
                 t.exception ? &t.exception : nullptr);
  t.state = task_state::done;
  --s.live;
  while (wait_node* n = t.joiners.pop_front()) {
    n->signaled = true;
    wake(n->task);
  }
  if (s.main_in_run && s.live == 0) wake(&s.main);
  if (t.exception && t.detached && !t.exception_taken) report_unjoined(&s, t);
  task_ctl* next = pick_next(s);
  GR_DEBUG_EVENT(s, trace_event::type::switch_, &t, next, nullptr, wake_reason::none, nullptr);
  if (--t.refs == 0) s.zombie = &t;
  next->state = task_state::running;
  ++next->switches;
  s.current = next;
  t.gl->set_parent_unchecked(next->gl);
}

// unwind_task: ends an unfinished task at the thread's end (shutdown()) or the process's
// (a join after leave_at_exit()): its stack unwinds (blocking calls raise task_cancelled
// meanwhile), and it counts as done. Its frame stays with its references.
void unwind_task(sched_state& s, task_ctl* t) noexcept {
  if (t->timer_index != task_ctl::npos) timer_remove(s, t);
  if (t->gl->active()) {
    task_ctl* const was = s.current;
    s.current = t;
    t->state = task_state::running;
    try {
      t->gl->kill();
    } catch (...) {
    }
    s.current = was;
  }
  t->state = task_state::done;
  --s.live;
  --t->refs;  // the running reference
}

// leave_at_exit: the main thread's scheduler as the process exits. Go's rule: tasks left
// unfinished are neither run again nor unwound. Unwinding them here would run their destructors
// after main()'s locals are gone (a task's guard calling done() on a wait_group of main()'s is a
// use after free), or, after exit() from a task, on the stack that is being unwound. They are
// reported (one left behind is usually a bug), and what they hold stays with the process: the
// state is kept, so a task handle of static storage dropped later still finds it; a blocking call
// from here on raises task_cancelled, and a spawn throws.
void leave_at_exit(sched_state& s) noexcept {
  if (s.zombie) reap(s);
  s.shutting_down = true;
  s.left_at_exit = true;
  s.stopped.at = s.last_now;  // main()'s clock may be gone already (see shutdown())
  s.clk = &s.stopped;
  const bool from_inside = greenlet::current() != s.main.gl;  // exit() called from a task or greenlet
  if (s.live > 0) {
    try {
      std::string msg =
          from_inside
              ? fmt::format("gr: exit() was called in {} with {} unfinished task(s), left as they are (as in Go, "
                            "their destructors do not run):\n",
                            s.current != &s.main ? task_label(*s.current) : greenlet::current()->describe(), s.live)
              : fmt::format("gr: the program is exiting with {} unfinished task(s), left as they are (as in Go, their "
                            "destructors do not run: main()'s locals, which they may use, are gone by now; cancel "
                            "and join them before main() returns to unwind them):\n",
                            s.live);
      msg += blocked_lines(s, false);
      std::fputs(msg.c_str(), stderr);
    } catch (...) {
    }
  }
  // LeakSanitizer does not scan stacks it was not told of: what the tasks' frames point to would
  // be reported as leaked, when it is only left behind like the tasks.
  for (task_ctl* t = s.all_tail; t && t != &s.main; t = t->all_prev)
    if (t->state != task_state::done) san_keep_reachable(t->memory.base, t->memory.size);
  // exit() from a task or greenlet: LeakSanitizer scans the running stack, that one's, and the
  // thread's own goes unscanned, with every pointer its frames hold.
  pthread_attr_t attr;
  if (from_inside && ::pthread_getattr_np(::pthread_self(), &attr) == 0) {
    void* base = nullptr;
    std::size_t size = 0;
    if (::pthread_attr_getstack(&attr, &base, &size) == 0) san_keep_reachable(base, size);
    ::pthread_attr_destroy(&attr);
  }
}

// shutdown: the thread is ending with tasks unfinished: report them, then unwind each one's stack
// (blocking calls raise task_cancelled meanwhile) so destructors run and stacks go back.
void shutdown(sched_state& s) noexcept {
  if (s.zombie) reap(s);
  s.shutting_down = true;
  // The program's clock is not read again: it may be destroyed already (a clock that is a local
  // of main(), as in the README's game loop). Ages and deadlines are reported from its last
  // reading.
  s.stopped.at = s.last_now;
  s.clk = &s.stopped;
  s.plain_ready = false;  // wake() leaves every task to the unwinding below
  if (s.live > 0) {
    std::string msg = fmt::format("gr: the scheduler is being destroyed with {} unfinished task(s); unwinding them:\n",
                                  s.live);
    msg += blocked_lines(s, false);
    std::fputs(msg.c_str(), stderr);
  }
  while (s.pop_ready()) {
  }
  // Newest first: a task usually outlives the tasks it spawned, and its stack may hold the
  // channels and locks they wait on, so they unwind (and leave those queues) before it does.
  while (s.all_tail != &s.main) {
    task_ctl* t = s.all_tail;
    if (t->state != task_state::done) unwind_task(s, t);
    unlink_task(s, t);
    t->sched = nullptr;
    if (t->refs == 0) {
      t->destroy(t, frame_part::all);
    } else {
      // A handle outlives the thread and frees the frame wherever it is dropped. What is this
      // thread's goes now: the callable of a task that never ran, the greenlet (its links and
      // count are this thread's, unsynchronized) and the stack's place in this thread's count;
      // destroy_task() then only ends the frame and frees the stack, adopted where it runs.
      t->destroy(t, frame_part::callable);
      t->gl->disown_thread();
      disown_stack(t->memory);
    }
  }
}

}  // namespace

// ---- the verbs ---------------------------------------------------------------------------------

task_ctl* current_task_slow() { return init_this_sched().current; }

time_point sched_now() {
  sched_state& s = this_sched();
  s.last_now = s.clk->now();
  return s.last_now;
}

namespace {
// max_cancel_raises: a cancelled task (or one being unwound at thread exit) that has caught
// task_cancelled this many times and still goes on is in a loop that swallows it, `catch (...)`
// around a blocking call: every call raises at once (cancellation is sticky), so it spins
// forever, starving its thread, and its join() or the thread's end never comes. No legitimate
// code catches a cancel that often; a clear abort beats a silent spin.
inline constexpr std::uint32_t max_cancel_raises = 100'000;

[[noreturn]] void cancel_swallowed(const sched_state& s) noexcept {
  const task_ctl& t = *s.current;
  fatal(fmt::format("{} has caught gr::task_cancelled {} times and goes on running ({}): a catch (...) or "
                    "catch (gr::task_cancelled&) that does not rethrow, around a blocking call in a loop, keeps it "
                    "from ever ending; rethrow it (catch (...) {{ ...; throw; }})",
                    describe_waiting_task(t), t.cancel_raises - 1,
                    s.shutting_down ? "its thread is ending and unwinds it" : "it was cancelled"));
}

// throw_cancelled: cold and out of line: flattened callers (join) would inline its event and throw.
[[noreturn, gnu::cold, gnu::noinline]] void throw_cancelled(sched_state& s) {
  if (++s.current->cancel_raises > max_cancel_raises) [[unlikely]]
    cancel_swallowed(s);
  GR_DEBUG_EVENT(s, trace_event::type::throw_, s.current, nullptr, nullptr, wake_reason::cancelled, nullptr);
  throw task_cancelled{};
}

// interrupted: the current task must not block: it was cancelled, or the thread is unwinding
// its tasks. Every blocking verb asks this first.
inline bool interrupted(const sched_state& s) { return s.current->cancel_requested || s.shutting_down; }

inline void raise_if_cancelled(sched_state& s) {
  if (interrupted(s)) [[unlikely]]
    throw_cancelled(s);
}
}  // namespace

void check_cancelled() { raise_if_cancelled(this_sched()); }

namespace {
// require_task_context: the CPU must be on the current task's greenlet. A blocking call or yield
// from a plain greenlet switched to by hand would otherwise save the wrong context.
[[gnu::cold, gnu::noinline]] void not_a_task(const sched_state& s) {
  throw error(fmt::format("gr: a blocking call or yield from {}, which is not a task (task #{} '{}' is the current "
                          "task); switch back to it, or spawn the work as a task",
                          greenlet::current()->describe(), s.current->id, s.current->name));
}
inline void require_task_context(const sched_state& s) {
  // The scheduler exists, so the greenlet layer's thread state does too (init_sched).
  if (tls_greenlet_thread->current != s.current->gl) [[unlikely]]
    not_a_task(s);
}

// park_traced: park_now's switch when a debugging hook is set: the block and switch events too.
[[gnu::noinline]] void park_traced(sched_state& s, task_ctl* self, const wait_reason& why) {
  GR_DEBUG_EVENT(s, trace_event::type::block, self, nullptr, &why, wake_reason::none, nullptr);
  switch_task(s, self, pick_next(s));
}

// park_now: blocks the current task. Asks the debugging hooks once (debug_hooked), not for the
// block and again for the switch.
[[gnu::flatten]] wake_reason park_now(sched_state& s, const wait_reason& why) {
  require_task_context(s);
  task_ctl* self = s.current;
  self->state = task_state::blocked;
  self->waiting = &why;  // the caller's (on its frame, or its object's): valid until park returns
  self->wake = wake_reason::none;
  if (debug_hooked()) [[unlikely]]
    park_traced(s, self, why);
  else
    switch_task<false>(s, self, pick_next(s));
  self->waiting = nullptr;
  return self->wake;
}

// parking_sched: this thread's scheduler, for park: its callers hold the current task already
// (current_task(), a wait node), so the scheduler exists.
inline sched_state& parking_sched() noexcept {
  GR_DEBUG_ASSERT(tls_sched, "park() before the thread's scheduler exists");
  return static_cast<sched_state&>(*tls_sched);
}
}  // namespace

wake_reason park(const wait_reason& why) {
  sched_state& s = parking_sched();
  if (interrupted(s)) [[unlikely]]
    return wake_reason::cancelled;
  return park_now(s, why);
}

wake_reason park_uninterruptible(const wait_reason& why) {
  sched_state& s = parking_sched();
  if (s.shutting_down) [[unlikely]]
    return wake_reason::cancelled;
  return park_now(s, why);
}

wake_reason park_until(const wait_reason& why, time_point deadline) {
  sched_state& s = this_sched();
  task_ctl* self = s.current;
  if (interrupted(s)) [[unlikely]]
    return wake_reason::cancelled;
  require_task_context(s);  // before the timer: a refused park must not leave it armed
  if (deadline == time_point::max()) return park(why);  // no timer: a deadlock stays detectable
  if (deadline <= s.clk->now()) return wake_reason::timeout;
  timer_arm(s, self, deadline);
  wake_reason r = park(why);
  if (self->timer_index != task_ctl::npos) timer_remove(s, self);
  return r;
}

void foreign_task(const task_ctl* t, const char* op) noexcept {
  // What it waits on, read across threads: best effort, for the message of a process that ends.
  const std::string on = t->waiting ? describe_wait(*t->waiting) : std::string();
  fatal(fmt::format("{} of {}{} was {} from a thread that {}: a task, and the channels and primitives its tasks "
                    "use, belong to one thread's scheduler; hand values between threads with something "
                    "thread-safe",
                    task_label(*t), t->sched ? "another thread's scheduler" : "a scheduler that has shut down",
                    on.empty() ? on : ", which waits to " + on + ",", op,
                    tls_sched ? "runs another scheduler" : "has no scheduler"));
}

void wake_slow(task_ctl* t, wake_reason why) noexcept {
  if (t->state != task_state::blocked) return;
  t->wake = why;
  sched_state& s = *t->sched;
  GR_DEBUG_EVENT(s, trace_event::type::wake, t, why == wake_reason::timeout ? nullptr : s.current, t->waiting, why,
                 nullptr);
  if (t->timer_index != task_ctl::npos) timer_remove(s, t);
  if (s.shutting_down) [[unlikely]] {
    t->state = task_state::runnable;  // never runs again: shutdown() unwinds every task itself
    return;
  }
  s.push_ready(t);
}

std::string describe_waiting_task(const task_ctl& t) {
  const std::string where = where_of(t);
  std::string out = task_label(t);
  if (!where.empty()) out += fmt::format(" (spawned at {})", where);
  if (t.state == task_state::blocked && t.waiting) out += ", which waits to " + describe_wait(*t.waiting);
  return out;
}

bool shutting_down() noexcept { return tls_sched && static_cast<sched_state*>(tls_sched)->shutting_down; }

void raise_if_interrupted(wake_reason why) {
  if (why == wake_reason::cancelled) throw_cancelled(this_sched());
  if (why == wake_reason::deadlock) throw deadlock_error(this_sched().deadlock_report);
}

// ---- tasks -----------------------------------------------------------------------------------------

void frame_too_big(const stack& s, std::size_t bytes, const std::string& name) {
  throw error(fmt::format("gr::spawn: the callable of task{} ({} bytes) leaves too little of its {} KiB stack; "
                          "capture less by value or ask for a bigger stack_size",
                          name.empty() ? std::string() : fmt::format(" '{}'", name), bytes, s.size / 1024));
}

namespace {
// name_task: out of line, so that launch() keeps no registers for the string move that most
// spawns (unnamed) skip.
[[gnu::noinline]] void name_task(task_ctl* c, std::string&& name) noexcept { c->name = std::move(name); }
}  // namespace

// spawned_in_shutdown: a task spawned while shutdown() unwinds the thread's tasks (from a
// destructor that runs then), or after leave_at_exit(), could never run: the thread is ending.
[[noreturn, gnu::cold, gnu::noinline]] void spawned_in_shutdown(std::string_view name,
                                                               const std::source_location& where) {
  throw error(fmt::format("gr::spawn: the task{} spawned at {}:{} would never run: {}",
                          name.empty() ? std::string() : fmt::format(" '{}'", name), where.file_name(), where.line(),
                          process_exiting() ? "the process is exiting"
                                            : "its thread's scheduler is unwinding its tasks at thread exit"));
}

task launch(task_ctl* c, std::string&& name, const std::source_location& where) {
  sched_state& s = this_sched();
  try {
    if (s.shutting_down) [[unlikely]]
      spawned_in_shutdown(name, where);
    s.rr.reserve(s.live + 2);  // a slot for every live task, this one and the main task
  } catch (...) {
    c->destroy(c, frame_part::all);
    throw;
  }
  c->sched = &s;
  c->id = s.next_id++;
  if (!name.empty()) name_task(c, std::move(name));  // c->name is fresh (empty): most tasks have none
  c->spawned_at = where;
  c->refs = 2;
  c->created = s.last_now;
  c->all_prev = s.all_tail;
  s.all_tail->all_next = c;
  s.all_tail = c;
  ++s.live;
  s.push_ready(c);
  GR_DEBUG_EVENT(s, trace_event::type::spawn, c, s.current, nullptr, wake_reason::none, nullptr);
  return task(c);
}

void run_task(task_ctl& c, void (*invoke)(void*), void (*destroy_fn)(void*) noexcept, void* fn) {
  sched_state& s = *c.sched;
  if (s.zombie) [[unlikely]]
    reap(s);
  try {
    if (c.cancel_requested)
      c.ended_by_cancel = true;  // cancelled before it started: never runs
    else
      invoke(fn);
  } catch (const task_cancelled&) {
    c.ended_by_cancel = true;
  } catch (const greenlet_exit&) {
    // Unwound by the scheduler's shutdown: the greenlet layer ends it. Anything else killed the
    // task's greenlet by hand (kill(), reset()) while it waited in a yield, and the task would
    // never finish.
    if (!s.shutting_down) resumed_by_hand(s, c);
    destroy_fn(fn);
    throw;
  } catch (...) {
    c.exception = std::current_exception();
    if (!c.exception) [[unlikely]]
      forced_unwind_in_task(c);  // a foreign exception: pthread_exit (see the greenlet layer's body())
  }
  destroy_fn(fn);
  // A task that caught the greenlet_exit of the shutdown and returned: the greenlet layer resumes
  // the killer; shutdown() does the bookkeeping.
  if (s.shutting_down) [[unlikely]]
    return;
  // Resumed by hand while it waited in a yield (a direct resume runs no check) and ended there,
  // by a throw_in for instance: the scheduler still runs another task.
  if (s.current != &c) [[unlikely]]
    resumed_by_hand(s, c);
  finish_task(s, c);
}

}  // namespace detail

// ---- task handle -------------------------------------------------------------------------------------

task& task::operator=(task&& o) noexcept {
  if (this != &o) {
    detach();
    ctl_ = std::exchange(o.ctl_, nullptr);
  }
  return *this;
}

void task::detach() noexcept {
  detail::task_ctl* c = std::exchange(ctl_, nullptr);
  if (!c) return;
  // The task's links and counts are its thread's (unsynchronized): letting go of it elsewhere
  // races with that thread. Once its thread has ended (no scheduler) it is anyone's.
  if (c->sched && c->sched != detail::tls_sched) [[unlikely]]
    detail::foreign_task(c, "detached (its handle dropped or detached)");
  c->detached = true;
  if (c->state == detail::task_state::done && c->exception && !c->exception_taken)
    detail::report_unjoined(c->sched, *c);
  detail::release_ref(c);
}

namespace detail {
namespace {
// The misuses join() and join_until() report. Cold and out of line: their formatting kept the
// hot path's registers busy.
[[noreturn, gnu::cold, gnu::noinline]] void throw_join_empty() {
  throw error("gr::task::join: the task handle is empty (moved from, joined or detached)");
}
[[noreturn, gnu::cold, gnu::noinline]] void throw_join_misuse(const task_ctl* c) {
  if (c->sched != tls_sched)
    throw error(fmt::format("gr::task::join: {} belongs to another thread's scheduler", task_label(*c)));
  throw error(fmt::format("gr::task::join: {} cannot join itself", task_label(*c)));
}
[[noreturn, gnu::cold, gnu::noinline]] void throw_join_raced(std::uint64_t id) {
  throw error(fmt::format("gr::task::join: task #{} was joined or detached through the same handle by another "
                          "task while this one waited",
                          id));
}
// await_done: parks the joining task on c's joiners until c is done, `park(why)` being the park
// (with or without a deadline). False when it woke for neither (a timeout); throws on cancel or
// deadlock, and when `handle` (the joining task::ctl_) no longer names c: another task joined or
// detached the same handle meanwhile, and c may be gone. Inlined into both joins.
template <class Park>
[[gnu::always_inline]] inline bool await_done(task_ctl* const& handle, task_ctl* c, Park park) {
  const std::uint64_t id = c->id;
  wait_node me{c->sched->current};
  c->joiners.push_back(me);
  const wait_reason why{"join", "task", c, &c->name};
  const wake_reason r = park(why);
  if (!me.signaled) [[unlikely]] {
    c->joiners.remove(me);
    raise_if_interrupted(r);
    return false;
  }
  if (me.linked()) __builtin_unreachable();  // finish_task unlinked it (pop_front)
  if (handle != c) [[unlikely]]
    throw_join_raced(id);
  return true;
}
// join_interrupted: join's check found the caller may not block: it was cancelled (raise), or
// the thread is ending. After leave_at_exit() (a static object's destructor that cancels and
// joins its task, say) nothing runs any more: the task is unwound here, as its thread's end
// would have, and the join goes on to its outcome.
[[gnu::cold, gnu::noinline]] void join_interrupted(task_ctl* c) {
  sched_state& s = *c->sched;
  if (!s.left_at_exit) throw_cancelled(s);
  if (c->state != task_state::done) unwind_task(s, c);
}
// rethrow_joined: join's end for a task that threw: the handle lets go, then the
// exception is rethrown. Cold: most tasks end normally.
[[noreturn, gnu::cold, gnu::noinline]] void rethrow_joined(task_ctl* c) {
  std::exception_ptr e = c->exception;
  release_ref(c);
  std::rethrow_exception(std::move(e));
}
}  // namespace
}  // namespace detail

// join_checked: the task `ctl_` names, after the checks every join makes: a task of this thread's
// scheduler, not the caller, and the caller not cancelled. From a thread with no scheduler every
// task is another thread's, and none is created to say so.
detail::task_ctl* task::join_checked() const {
  detail::task_ctl* c = ctl_;
  if (!c) [[unlikely]]
    detail::throw_join_empty();
  detail::sched_head* const here = detail::tls_sched;
  if (!here || c->sched != here || c == here->current) [[unlikely]] {
    // Its thread has ended: the task is done (unwound, if it had not finished) and its outcome
    // is kept for this join, on any thread.
    if (!c->sched) return c;
    detail::throw_join_misuse(c);
  }
  if (detail::interrupted(*c->sched)) [[unlikely]]
    detail::join_interrupted(c);
  return c;
}

// joined: the end of a join, once `c` is done: the handle lets go; what the task threw is rethrown.
void task::joined(detail::task_ctl* c) {
  c->exception_taken = true;
  ctl_ = nullptr;
  if (c->exception) [[unlikely]]
    detail::rethrow_joined(c);
  detail::release_ref(c);
}

bool task::join_until(time_point deadline) {
  if (deadline == time_point::max()) {
    join();  // no timer: a deadlock stays detectable
    return true;
  }
  detail::task_ctl* c = join_checked();
  const auto park = [deadline](const detail::wait_reason& why) { return detail::park_until(why, deadline); };
  if (c->state != detail::task_state::done && !detail::await_done(ctl_, c, park)) return false;  // timeout
  joined(c);
  return true;
}

// join: join_until() without a deadline, so without its timer: a park, whose cancel check
// join_checked() made. Flattened, so the park is inlined: the joiner resumes in this frame, one
// return from its caller. The switch back leaves the finished task's return addresses in the
// CPU's return-stack buffer, so each return on the joiner's way out is mispredicted (README,
// "Where the time goes"): one fewer here. tools/count: spawn + join 786 to 767 instructions
// with the checks above.
[[gnu::flatten]] void task::join() {
  detail::task_ctl* c = join_checked();
  if (c->state != detail::task_state::done) {
    detail::sched_state& s = *c->sched;
    const auto park = [&s](const detail::wait_reason& why) { return detail::park_now(s, why); };
    const bool done = detail::await_done(ctl_, c, park);
    GR_ASSERT(done, "a join woke with neither the task done, a cancel nor a deadlock");
  }
  joined(c);
}

void task::cancel() noexcept {
  if (!ctl_) return;
  // Before reading its state: from another thread that read is already a race. (A task whose
  // scheduler shut down is done, and has no scheduler to compare.)
  if (ctl_->sched && ctl_->sched != detail::tls_sched) [[unlikely]]
    detail::foreign_task(ctl_, "cancelled");
  if (ctl_->state == detail::task_state::done) return;
  ctl_->cancel_requested = true;
  GR_DEBUG_EVENT(*ctl_->sched, trace_event::type::cancel, ctl_, ctl_->sched->current, nullptr,
                 detail::wake_reason::cancelled, nullptr);
  // wake_slow: rare, so no inline path to keep.
  detail::wake_slow(ctl_, detail::wake_reason::cancelled);
}

bool task::done() const noexcept { return ctl_ && ctl_->state == detail::task_state::done; }
bool task::cancelled() const noexcept { return ctl_ && ctl_->cancel_requested; }
std::uint64_t task::id() const noexcept { return ctl_ ? ctl_->id : 0; }
const std::string& task::name() const noexcept {
  static const std::string empty;
  return ctl_ ? ctl_->name : empty;
}

// ---- this task -----------------------------------------------------------------------------------------

namespace detail {
namespace {

// Both helpers are forced inline: out of line, GCC's pure-const analysis finds them free of side
// effects (prefetches do not count) and deletes the calls.
[[gnu::always_inline]] inline void prefetch_range(const void* from, std::size_t bytes) noexcept {
  const char* p = static_cast<const char*>(from);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}

// prefetch_ahead: a long round-robin ring of yielding tasks is bound by cache and TLB misses: by
// the time a task runs again, a whole lap of other tasks has evicted its control block, greenlet
// and saved stack. So yield() prefetches for tasks queued behind `next`, in two stages that never
// wait on a miss themselves: the task `frame_ahead` places back gets the cache lines a switch
// reads of its task_frame; the one `stack_ahead` places back, whose frame lines that prefetch
// brought in a few switches ago, has its saved stack pointer read and its stack's top prefetched.
// Only with the built-in queue, where the k-th task behind is one load away (ready_ring).
inline constexpr std::size_t frame_ahead = 3;
inline constexpr std::size_t stack_ahead = 1;
[[gnu::always_inline]] inline void prefetch_ahead(const sched_state& s) noexcept {
  const std::size_t queued = s.rr.size();
  if (queued <= stack_ahead) return;  // two tasks yielding to each other stop here, one compare in
  if (queued > frame_ahead) {
    // What a switch reads of a spawned task's frame: the first line of its greenlet (all a
    // switch touches of it on a guarded stack: see greenlet.hpp), the first of its control
    // block, and the callable right behind the control block. (The main task's control block is
    // no frame's; prefetching beside it is harmless.)
    const task_ctl* t = s.rr.at(frame_ahead);
    __builtin_prefetch(reinterpret_cast<const char*>(t) - task_frame_ctl_offset);
    __builtin_prefetch(t);
    __builtin_prefetch(t + 1);
  }
  // Last: its loads may wait on a miss, and the frame prefetches above need not wait with them.
  const greenlet* g = s.rr.at(stack_ahead)->gl;
  if (const void* sp = g->suspended_sp()) prefetch_range(sp, 192);  // the frames it resumes into
  // A task on a slab stack (past the guard budget) reads its stack descriptor, off the greenlet's
  // first line, when it switches away, for the canary check.
  if (g->checks_canary()) [[unlikely]]
    __builtin_prefetch(&g->stack_region());
}

}  // namespace
}  // namespace detail

namespace detail {
namespace {
// Out of line, so yield() keeps no local whose address escapes: GCC then compiles its last call
// as a tail call (a jmp), which is what lets yield_transfer return straight into yield's caller.
[[gnu::noinline, gnu::cold]] void reap_for_yield(sched_state& s) noexcept { reap(s); }
}  // namespace
}  // namespace detail

// Not flattened (see reap_for_yield): BM_Sched_Yield and the disassembly show whether the
// call to yield_transfer stays a jmp.
void yield() {
  detail::sched_state& s = detail::this_sched();
  detail::require_task_context(s);
  detail::task_ctl* self = s.current;
  // A cancellation point (Kotlin's yield, Trio's checkpoint, a Unity coroutine's next frame): an
  // entity that waits frames with yield() stops when cancelled. Checked on entry only: a task
  // cancelled while it waits in the ready queue returns from that yield (the direct resume runs no
  // code of ours) and raises at its next one.
  if (self->cancel_requested) [[unlikely]]
    detail::throw_cancelled(s);
  if (!s.timers.empty() && (++s.tick & 63) == 0) detail::fire_expired(s);
  detail::task_ctl* next = s.rotate_ready(self);
  if (!next) {
    // Nothing else is runnable: no switch, so no event at which a dump_on_signal request would
    // be answered; a task that yields alone in a loop answers it here.
    if (detail::debug_hooked()) [[unlikely]]
      detail::dump_if_asked();
    return;
  }
  if (!s.custom) [[likely]]
    detail::prefetch_ahead(s);
  // switch_task's work, all of it before the switch: the yielding task comes back through
  // yield_transfer straight into yield's caller, running nothing of ours on the way.
  next->state = detail::task_state::running;
  GR_DEBUG_EVENT(s, trace_event::type::switch_, self, next, nullptr, detail::wake_reason::none, nullptr);
  ++next->switches;
  s.current = next;
  if (s.zombie) [[unlikely]]
    detail::reap_for_yield(s);
  greenlet::yield_transfer(self->gl, next->gl);  // the tail call
}

void sleep_until(time_point deadline) {
  detail::check_cancelled();
  detail::raise_if_interrupted(detail::park_until({"sleep", nullptr, nullptr, nullptr}, deadline));
}

std::uint64_t this_task::id() { return detail::current_task()->id; }
const std::string& this_task::name() { return detail::current_task()->name; }
bool this_task::cancelled() { return detail::current_task()->cancel_requested; }

// ---- the scheduler facade ---------------------------------------------------------------------------------

scheduler& scheduler::current() { return detail::this_sched().facade; }

namespace {
void require_main(detail::sched_state& s, const char* what) {
  if (s.current != &s.main)
    throw error(fmt::format("gr::scheduler::{}: call it from the main task, not from task #{} '{}'", what,
                            s.current->id, s.current->name));
  // On a greenlet the main task switched to by hand, a switch would save that greenlet's
  // registers as the main task's, and main() would never be resumed where it stopped.
  if (greenlet::current() != s.main.gl)
    throw error(fmt::format("gr::scheduler::{}: call it from the main task's own greenlet (the thread's root), not "
                            "from {}, which it switched to",
                            what, greenlet::current()->describe()));
}
}  // namespace

void scheduler::run() {
  detail::sched_state& s = *state_;
  require_main(s, "run");
  while (s.live > 0) {
    s.main_in_run = true;
    detail::wake_reason r = detail::park({"see every task finish in scheduler::run()", nullptr, nullptr, nullptr});
    s.main_in_run = false;
    detail::raise_if_interrupted(r);
  }
}

bool scheduler::run_once() {
  detail::sched_state& s = *state_;
  require_main(s, "run_once");
  if (!s.timers.empty()) detail::fire_expired(s);
  if (detail::task_ctl* first = s.pop_ready()) {
    // The main task queues itself behind everything runnable now: it runs again once each of them
    // has had its turn; what they spawn or wake queues behind it, for the next frame.
    s.push_ready(&s.main);
    detail::switch_task(s, &s.main, first);
  }
  return s.live > 0;
}

bool scheduler::run_for(duration budget) {
  detail::sched_state& s = *state_;
  require_main(s, "run_for");
  const time_point end = detail::deadline_after(s.clk->now(), budget);  // duration::max(): no end
  while (s.live > 0) {
    if (!s.timers.empty()) detail::fire_expired(s);
    if (s.ready_empty()) {
      if (s.timers.empty()) break;
      const time_point next = s.timers.front()->deadline;
      if (next > end || !detail::idle_wait(s, next)) break;
      continue;
    }
    const bool passive = s.clk->passive();
    const time_point before = passive ? s.clk->now() : time_point{};
    run_once();
    const time_point after = s.clk->now();
    // A passive clock (a manual clock, which only the program advances) that did not move during
    // a frame never will within this call: stop, as after run_once(), rather than spin on a
    // budget nothing spends. No budget (duration::max()) means "until nothing is runnable".
    if (after >= end || (passive && after == before && end != time_point::max())) break;
  }
  return s.live > 0;
}

void scheduler::set_clock(gr::clock& c) {
  detail::sched_state& s = *state_;
  if (&c == s.clk) return;
  // An armed deadline is a point on the clock that armed it: on another clock it would fire at
  // once, or never (a steady clock's now is the machine's uptime; a manual clock starts at 0).
  if (!s.timers.empty())
    throw error(fmt::format("gr::scheduler::set_clock: {} task(s) wait with a deadline on the current clock, whose "
                            "time the deadline is in (the first: {}); set the clock before tasks sleep or wait with "
                            "a deadline, or once none does",
                            s.timers.size(), describe(detail::info_of(*s.timers.front()))));
  s.clk = &c;
  s.last_now = c.now();
}
void scheduler::reset_clock() { set_clock(state_->steady); }
gr::clock& scheduler::clock() const noexcept { return *state_->clk; }
time_point scheduler::now() const noexcept { return state_->clk->now(); }

void scheduler::set_policy(std::unique_ptr<ready_policy> p) {
  if (!p) throw error("gr::scheduler::set_policy: null policy");
  detail::sched_state& s = *state_;
  while (detail::task_ctl* t = s.pop_ready()) p->push(t);
  s.custom = std::move(p);
  s.plain_ready = false;  // wake() queues through the policy from now on
}

std::size_t scheduler::task_count() const noexcept { return state_->live; }

void scheduler::set_unjoined_handler(unjoined_handler h) { state_->unjoined = std::move(h); }

std::vector<task_info> scheduler::snapshot() const {
  if (state_->zombie) detail::reap(*state_);  // see the zombie invariant at the top
  std::vector<task_info> out;
  for (detail::task_ctl* t = &state_->main; t; t = t->all_next) out.push_back(detail::info_of(*t));
  return out;
}

namespace detail {

namespace {
// resident_bytes: how much of [base, base + size) is in memory: the deepest the stack has been
// used (since it was mapped), measured without touching it.
std::size_t resident_bytes(const void* base, std::size_t size) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto lo = reinterpret_cast<std::uintptr_t>(base) / page * page;  // slab stacks are not page aligned
  const auto hi = (reinterpret_cast<std::uintptr_t>(base) + size + page - 1) / page * page;
  std::vector<unsigned char> v((hi - lo) / page);
  if (::mincore(reinterpret_cast<void*>(lo), hi - lo, v.data()) != 0) return 0;
  std::size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n * page;
}
}  // namespace

task_info info_of(const task_ctl& t) {
  task_info i;
  i.id = t.id;
  i.name = t.name;
  switch (t.state) {
    case task_state::runnable: i.state = "runnable"; break;
    case task_state::running: i.state = "running"; break;
    case task_state::blocked: i.state = "blocked"; break;
    case task_state::done: i.state = "done"; break;
  }
  if (t.state == task_state::blocked && t.waiting && t.waiting->verb) i.waiting = describe_wait(*t.waiting);
  i.has_deadline = t.timer_index != task_ctl::npos;
  i.deadline = t.deadline;
  i.spawned_at = where_of(t);
  i.created = t.created;
  i.switches = t.switches;
  i.is_main = t.is_main;
  i.cancelled = t.cancel_requested;
  i.stack_base = t.memory.base;
  i.stack_size = t.memory.size;
  i.greenlet = t.gl;
  if (t.memory.base && t.state != task_state::done) {
    const auto* top = static_cast<const char*>(t.gl->stack_region().top());
    const char* sp = nullptr;
    if (t.sched && t.sched->current == &t)
      sp = static_cast<const char*>(__builtin_frame_address(0));
    else if (t.gl->started())
      sp = static_cast<const char*>(t.gl->suspended_sp());
    if (sp && sp <= top) i.stack_used = static_cast<std::size_t>(top - sp);
    i.stack_peak = resident_bytes(t.memory.base, t.memory.size);
  }
  if (t.sched && !t.is_main) i.age = t.sched->clk->now() - t.created;
  return i;
}

}  // namespace detail

std::string scheduler::describe(const task_info& t) {
  std::string s = t.name.empty() ? fmt::format("task #{}", t.id) : fmt::format("task #{} '{}'", t.id, t.name);
  s += ": ";
  s += t.state;
  if (!t.waiting.empty()) {
    s += ", waits to ";
    s += t.waiting;
  }
  if (t.has_deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(t.deadline - scheduler::current().now());
    // Past already when the dump comes between the clock's wait and the timers firing.
    if (left.count() >= 0)
      s += fmt::format(" (deadline in {:.3f} ms)", static_cast<double>(left.count()) / 1000.0);
    else
      s += fmt::format(" (deadline passed {:.3f} ms ago)", static_cast<double>(-left.count()) / 1000.0);
  }
  if (t.cancelled) s += ", cancelled";
  if (!t.spawned_at.empty()) {
    s += ", spawned at ";
    s += t.spawned_at;
  }
  if (!t.is_main)
    s += fmt::format(", age {:.3f} s", std::chrono::duration<double>(t.age).count());
  s += fmt::format(", switches {}", t.switches);
  if (t.stack_size)
    s += fmt::format(", stack {:.1f} KiB now, {} KiB peak of {} KiB", static_cast<double>(t.stack_used) / 1024.0,
                     t.stack_peak / 1024, t.stack_size / 1024);
  return s;
}

// clock_nanosleep rather than std::this_thread::sleep_until, which sleeps again after a signal:
// here a signal ends the wait early (the scheduler checks its timers and waits again), so a dump
// asked for by gr::dump_on_signal() is printed at once, not when the next timer fires.
// steady_clock is CLOCK_MONOTONIC (libstdc++ and libc++ on Linux).
bool steady_clock_source::wait_until(time_point tp) {
  const auto since = std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count();
  if (since <= 0) return true;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(since / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(since % 1'000'000'000);
  ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
  return true;
}

}  // namespace gr
