// gr/sched/task.hpp: go-style tasks.
//
//   gr::task t = gr::spawn([&] { work(); }, {.name = "worker"});
//   ...                                   // the caller goes on; `t` runs when the caller blocks
//   t.join();                             // waits; rethrows what work() threw
//
//   gr::spawn([] { serve(); }).detach();  // fire and forget, as `go serve()`
//
// spawn() queues the task at the tail of the ready queue (Go and Boost.Fiber's post) and returns
// at once. A task runs on its own stack until its function returns, cooperatively: it gives the
// CPU away only when it blocks (join, sleep, lock, channel operations) or yields.
//
// The handle: a move-only gr::task. Destroying a handle that was neither joined nor detached
// detaches the task (as Go's goroutines, tokio's JoinHandle); it runs on, and if it ends by an
// exception nobody joins, the exception is reported on stderr with the task's name and spawn site
// (see scheduler::set_unjoined_handler) - never silently lost. Owned by the scheduler's thread:
// used from another thread (dropped, detached, joined, cancelled) it aborts or throws, naming the
// task, until that thread has ended. Then the task is done (unwound, if it had not finished) and
// the handle is anyone's: join() gives its outcome, dropping it frees it.
#pragma once

#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>
#include <gr/sched/clock.hpp>
#include <gr/sched/detail/task_ctl.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/wait.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <source_location>
#include <string>
#include <type_traits>
#include <utility>

namespace gr {

// task_options: `name` shows in deadlock reports, dumps and traces; `stack_size` 0 is the default.
// The task's frame (its callable and bookkeeping, a few hundred bytes) sits at the top of its
// stack, its colour below the top (at most an eighth of the stack; see gr::stack::colour).
struct task_options {
  std::string name{};
  std::size_t stack_size = 0;
};

class task;
namespace detail {
task launch(task_ctl* c, std::string&& name, const std::source_location& where);
}

class task {
public:
  task() noexcept = default;
  task(task&& o) noexcept : ctl_(std::exchange(o.ctl_, nullptr)) {}
  task& operator=(task&& o) noexcept;
  ~task() {
    if (ctl_) detach();  // joined and moved-from handles (the usual end) skip the call
  }

  // join: blocks the calling task until this one has finished, then rethrows the exception that
  // ended it, if any (a task ended by cancellation joins normally). Afterwards the handle is
  // empty. Throws gr::error on an empty handle, when a task joins itself, for a task of another
  // running thread's scheduler (one whose thread has ended gives its outcome at once, on any
  // thread), or when another task joined (or detached)
  // the same handle while this one waited; gr::task_cancelled if the caller is cancelled meanwhile
  // (the task runs on and can be joined again).
  void join();
  // join_until / join_for: join() with a deadline; false (and the handle still joinable) on
  // timeout.
  bool join_until(time_point deadline);
  template <class Rep, class Period>
  bool join_for(std::chrono::duration<Rep, Period> d);

  // detach: lets the task run on by itself; the handle becomes empty. No-op on an empty handle.
  // On another thread than the task's (while that one runs) it aborts, naming the task.
  void detach() noexcept;

  // cancel: asks the task to stop. It raises gr::task_cancelled inside the task at its current
  // blocking call, or its next one or its next yield(); a task that has not started yet never runs
  // its function. Sticky: every later blocking call or yield of the task raises it too. No-op once
  // the task is done.
  // Call it on the task's own thread: from another one it aborts, naming the task.
  void cancel() noexcept;

  bool joinable() const noexcept { return ctl_ != nullptr; }
  bool done() const noexcept;       // its function has returned or thrown (false on empty)
  bool cancelled() const noexcept;  // cancel() was called on it (false on empty: ask before join())
  std::uint64_t id() const noexcept;
  const std::string& name() const noexcept;

private:
  friend task detail::launch(detail::task_ctl*, std::string&&, const std::source_location&);
  explicit task(detail::task_ctl* c) noexcept : ctl_(c) {}
  detail::task_ctl* join_checked() const;  // join's checks (see scheduler.cpp)
  void joined(detail::task_ctl* c);        // join's end: let go, rethrow
  detail::task_ctl* ctl_ = nullptr;
};

// spawn: starts `fn()` (any callable taking no argument; its result is discarded) as a new task
// of this thread's scheduler, queued at the tail. The callable is moved into the task's stack,
// and destroyed when the task finishes. Throws std::system_error if no stack can be had, and
// gr::error, naming the task, while the thread's scheduler unwinds its tasks at thread exit, or
// once the process is exiting (the task could never run). A task must not end holding a
// gr::mutex: that aborts, naming it.
template <class F>
task spawn(F&& fn, task_options opts = {}, std::source_location where = std::source_location::current());

namespace detail {

// describe_task_stack: what a stack-overflow message says of a task: its id, name and spawn site
// (only reads: it runs in the overflow signal handler).
inline void describe_task_stack(const task_ctl& c, running_stack& out) noexcept {
  out.task = true;
  out.owner = c.gl;
  out.id = c.id;
  out.label = c.name.c_str();
  out.file = c.spawned_at.file_name();
  out.line = static_cast<unsigned>(c.spawned_at.line());
  out.total = c.memory.size;
}

// task_frame: the greenlet, control block and callable of a spawned task, placed at the top of the
// task's own stack, its colour below the top (see frame_slot). Its control block sits
// task_frame_ctl_offset bytes into it, for every F (the scheduler's prefetch relies on that).
inline constexpr std::size_t task_frame_ctl_offset = (sizeof(greenlet) + alignof(task_ctl) - 1) / alignof(task_ctl) * alignof(task_ctl);

template <class F>
class task_frame final : public greenlet {
public:
  // On the lowest `usable` bytes of `mem`, the rest of which it occupies.
  task_frame(const stack& mem, std::size_t usable, F&& fn) : greenlet(nullptr, mem, usable) {
    ::new (fn_storage()) F(std::move(fn));
  }
  task_frame(const stack& mem, std::size_t usable, const F& fn) : greenlet(nullptr, mem, usable) {
    ::new (fn_storage()) F(fn);
  }

  task_ctl ctl;

  static void destroy(task_ctl* c, frame_part part) noexcept;

private:
  // end_frame: destroy() once the callable is gone: the frame and the stack.
  static void end_frame(task_ctl* c, frame_part) noexcept;
  F* fn_storage() noexcept { return std::launder(reinterpret_cast<F*>(storage_)); }
  void* run(void*) override;
  void describe_running(running_stack& out) const noexcept override { describe_task_stack(ctl, out); }
  alignas(F) unsigned char storage_[sizeof(F)];
};

// run_task: the body every task shares; `invoke` calls the callable, `finish` destroys it.
void run_task(task_ctl& c, void (*invoke)(void*), void (*destroy_fn)(void*) noexcept, void* fn);
// frame_slot: where a frame of `bytes` with `align` goes on `s`: s.colour_offset() below the top
// (see gr::stack::colour), or at the very top when the colour would leave too little below it or
// the frame is aligned past a cache line. The bytes below the frame are the usable stack. Throws
// gr::error, naming the task (`name`, may be empty), if too little would be left even so. Inline:
// it runs on every spawn.
[[noreturn]] void frame_too_big(const stack& s, std::size_t bytes, const std::string& name);
inline void* frame_slot(const stack& s, std::size_t bytes, std::size_t align, const std::string& name) {
  const auto base = reinterpret_cast<std::uintptr_t>(s.base);
  const auto mask = ~(std::uintptr_t{align < 16 ? 16 : align} - 1);
  // A frame aligned past a cache line would round its colour away, at up to a page of stack.
  const std::size_t colour = align > stack::colour_step ? 0 : s.colour_offset();
  auto slot = (base + s.size - colour - bytes) & mask;
  if (slot < base || slot - base < min_stack_size / 2) [[unlikely]] {
    slot = (base + s.size - bytes) & mask;  // a stack too small to spare its colour
    if (slot < base || slot - base < min_stack_size / 2) frame_too_big(s, bytes, name);
  }
  return reinterpret_cast<void*>(slot);
}

template <class F>
void* task_frame<F>::run(void*) {
  run_task(
      ctl, [](void* f) { (*static_cast<F*>(f))(); },
      [](void* f) noexcept { static_cast<F*>(f)->~F(); }, fn_storage());
  return nullptr;
}

template <class F>
void task_frame<F>::destroy(task_ctl* c, frame_part part) noexcept {
  auto* self = static_cast<task_frame*>(c->gl);
  if (!self->started()) std::destroy_at(self->fn_storage());  // never ran: run_task did not end it
  if (part == frame_part::callable) {
    c->destroy = &end_frame;  // the callable is gone, whatever happens to the frame now
    return;
  }
  end_frame(c, part);
}

template <class F>
void task_frame<F>::end_frame(task_ctl* c, frame_part) noexcept {
  stack mem = c->memory;
  static_cast<task_frame*>(c->gl)->~task_frame();
  release_stack(mem);
}

}  // namespace detail

template <class F>
task spawn(F&& fn, task_options opts, std::source_location where) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn&>, "gr::spawn: the task function must be callable with no arguments");
  using frame = detail::task_frame<Fn>;
  stack mem = allocate_stack(opts.stack_size);
  frame* f;
  try {
    void* slot = detail::frame_slot(mem, sizeof(frame), alignof(frame), opts.name);
    const auto usable = static_cast<std::size_t>(static_cast<char*>(slot) - static_cast<char*>(mem.base));
    f = ::new (slot) frame(mem, usable, std::forward<F>(fn));
  } catch (...) {
    release_stack(mem);
    throw;
  }
  GR_DEBUG_ASSERT(reinterpret_cast<char*>(&f->ctl) - reinterpret_cast<char*>(static_cast<greenlet*>(f)) ==
                      static_cast<std::ptrdiff_t>(detail::task_frame_ctl_offset),
                  "task_frame's control block is not where task_frame_ctl_offset says");
  f->ctl.gl = f;
  f->ctl.memory = mem;
  f->ctl.destroy = &frame::destroy;
  return detail::launch(&f->ctl, std::move(opts.name), where);
}

template <class Rep, class Period>
bool task::join_for(std::chrono::duration<Rep, Period> d) {
  return join_until(detail::deadline_in(d));
}

}  // namespace gr
