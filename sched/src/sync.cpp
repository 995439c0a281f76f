// Task-aware mutex, condition_variable, wait_group and semaphore, on wait_queue + park/wake.
//
// Invariants:
//   - mutex: owner_ == null implies waiters_ is empty (unlock hands the lock to the first waiter
//     rather than freeing it), so lock() can take a free mutex without looking at the queue.
//   - semaphore: count_ > 0 implies waiters_ is empty (release hands permits to waiters first).
//   - wait_group: count_ == 0 implies waiters_ is empty.
//   - A waiter whose node is `signaled` has been handed what it waited for; it must not undo that
//     even if a timeout or cancel woke it at the same time (the cancel stays sticky for its next
//     blocking call).
#include <gr/sched/condition_variable.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/wait_group.hpp>

#include <fmt/format.h>

namespace gr {
namespace {

std::string label(const char* kind, const std::string& name, const void* self) {
  return name.empty() ? fmt::format("{} {}", kind, self) : fmt::format("{} '{}'", kind, name);
}

// block_until: parks the current task in `q` until signaled, the deadline, a cancel or a deadlock.
// Returns true when signaled; false on timeout; throws on cancel / deadlock. If the task is
// unwound while parked (the scheduler's shutdown) after a waker already granted it what it waited
// for, `give_back()` returns that (the lock, the permit) so no other waiter is left stranded.
template <class GiveBack>
bool block_until(detail::wait_queue& q, const detail::wait_reason& why, time_point deadline, GiveBack give_back) {
  detail::wait_node me{detail::current_task()};
  q.push_back(me);
  detail::wake_reason r;
  try {
    r = deadline == time_point::max() ? detail::park(why) : detail::park_until(why, deadline);
  } catch (...) {
    if (me.signaled) give_back();
    throw;  // `me` unlinks itself
  }
  if (me.signaled) return true;
  q.remove(me);
  detail::raise_if_interrupted(r);
  return false;
}

void signal(detail::wait_node* n) noexcept {
  n->signaled = true;
  detail::wake(n->task);
}

// destroyed_with_waiters: a primitive (`kind` `name` at `self`) destroyed during the scheduler's
// shutdown while tasks (being unwound too) still wait on it lets go of their nodes; at any other
// time that is a bug and aborts, listing the waiters. `state`: what it was in ("locked", ...).
void destroyed_with_waiters(detail::wait_queue& q, const char* kind, const std::string& name, const void* self,
                            const char* state = "tasks wait on it:") noexcept {
  if (detail::shutting_down()) {
    while (q.pop_front()) {
    }
    return;
  }
  std::string msg = "a primitive was destroyed while tasks wait on it";
  try {
    msg = fmt::format("{} destroyed while {}", label(kind, name, self), state);
    for (const detail::wait_node* n = q.front(); n; n = n->next) msg += "\n  " + detail::describe_waiting_task(*n->task);
    msg += "\nlet the tasks finish (or cancel and join them) before it is destroyed";
  } catch (...) {  // no memory for the list: the first line says enough
  }
  detail::fatal(msg);
}

constexpr auto nothing_to_give_back = [] {};

}  // namespace

// ---- mutex ---------------------------------------------------------------------------------------

mutex::~mutex() {
  if (owner_ || !waiters_.empty())
    // The owner is not described: one unwound at its thread's exit while holding a lock taken
    // by hand (no guard) is freed by now.
    destroyed_with_waiters(waiters_, "mutex", name_, this, waiters_.empty() ? "locked" : "locked, and tasks wait for it:");
}

std::string mutex::describe_lock_wait(const void* self) {
  const auto& m = *static_cast<const mutex*>(self);
  // The holder's name only: describing what the holder waits on in turn could go round a cycle.
  return fmt::format("{} (held by {})", label("mutex", m.name_, &m),
                     m.owner_ ? detail::task_label(*m.owner_) : std::string("nobody"));
}

bool mutex::lock_until(time_point deadline, bool interruptible) {
  detail::task_ctl* self = detail::current_task();
  if (owner_ == self)
    throw error(fmt::format("gr::mutex::lock: {} already owns {} (it is not recursive)", detail::task_label(*self),
                            label("mutex", name_, this)));
  if (interruptible) detail::check_cancelled();
  if (!owner_) {
    owner_ = self;
    ++self->mutexes_held;
    return true;
  }
  // Held by another thread's task: waiting would never end (its unlock cannot wake a task of
  // this thread), and a deadlock report would name a holder of another scheduler as if ours.
  if (owner_->sched != self->sched) [[unlikely]]
    throw error(fmt::format("gr::mutex::lock: {} is held by {} of another thread's scheduler: a gr::mutex belongs "
                            "to one thread's tasks (between threads, use std::mutex)",
                            label("mutex", name_, this), detail::task_label(*owner_)));
  const detail::wait_reason why{"lock", "mutex", this, &name_, &describe_lock_wait};
  if (interruptible) return block_until(waiters_, why, deadline, [this] { unlock(); });
  // Must end holding the lock (a condition_variable wait re-locking): a cancel only wakes us early.
  detail::wait_node me{self};
  waiters_.push_back(me);
  while (!me.signaled) {
    detail::wake_reason r;
    try {
      r = detail::park_uninterruptible(why);
    } catch (...) {
      // Unwound while parked (the thread's shutdown kills the task): a lock already handed over
      // goes back, or it would stay owned by a task that no longer exists. `me` unlinks itself.
      if (me.signaled) unlock();
      throw;
    }
    if (r == detail::wake_reason::deadlock) {
      waiters_.remove(me);
      detail::raise_if_interrupted(r);
    }
    if (r == detail::wake_reason::cancelled && !me.signaled && detail::shutting_down()) {
      waiters_.remove(me);  // the scheduler is unwinding every task: give up the wait
      break;
    }
  }
  return me.signaled;
}

void mutex::lock() { lock_until(time_point::max(), true); }

bool mutex::try_lock() {
  if (owner_) return false;
  owner_ = detail::current_task();
  ++owner_->mutexes_held;
  return true;
}

bool mutex::try_lock_until(time_point deadline) { return lock_until(deadline, true); }

void mutex::unlock() {
  detail::task_ctl* self = detail::current_task();
  if (owner_ != self)
    throw error(fmt::format("gr::mutex::unlock: {} does not own {}{}", detail::task_label(*self),
                            label("mutex", name_, this),
                            owner_ ? " (" + detail::task_label(*owner_) + " does)" : std::string(" (nobody does)")));
  --self->mutexes_held;
  if (detail::wait_node* n = waiters_.pop_front()) {
    owner_ = n->task;  // hand-off: FIFO, and no barging
    ++owner_->mutexes_held;
    signal(n);
  } else {
    owner_ = nullptr;
  }
}

// ---- condition_variable ------------------------------------------------------------------------------

condition_variable::~condition_variable() {
  if (!waiters_.empty())
    destroyed_with_waiters(waiters_, "condition_variable", name_, this);
}

std::cv_status condition_variable::wait_until(std::unique_lock<mutex>& lock, time_point deadline) {
  detail::task_ctl* self = detail::current_task();
  mutex* m = lock.mutex();
  if (!m || !lock.owns_lock() || m->owner_ != self)
    throw error(fmt::format("gr::condition_variable::wait: the lock passed for {} is not held by task #{}",
                            label("condition_variable", name_, this), self->id));
  detail::check_cancelled();
  detail::wait_node me{self};
  waiters_.push_back(me);
  m->unlock();
  const detail::wait_reason why{"wait on", "condition_variable", this, &name_};
  detail::wake_reason r;
  try {
    r = deadline == time_point::max() ? detail::park(why) : detail::park_until(why, deadline);
  } catch (...) {
    lock.release();  // unwound while waiting (shutdown): the mutex is not ours, and stays unlocked
    throw;
  }
  const bool signaled = me.signaled;
  waiters_.remove(me);
  // Re-lock even if cancelled. Should re-locking itself fail (a deadlock while the owner can never
  // unlock, or the scheduler shutting down), `lock` must stop claiming the mutex, or its destructor
  // would unlock a mutex this task does not own (gr::error out of a destructor: terminate).
  bool relocked;
  try {
    relocked = m->lock_until(time_point::max(), false);
  } catch (...) {
    lock.release();
    throw;
  }
  if (!relocked) {
    lock.release();
    throw task_cancelled{};
  }
  if (!signaled) detail::raise_if_interrupted(r);
  return signaled ? std::cv_status::no_timeout : std::cv_status::timeout;
}

void condition_variable::wait(std::unique_lock<mutex>& lock) { wait_until(lock, time_point::max()); }

void condition_variable::notify_one() noexcept {
  if (detail::wait_node* n = waiters_.pop_front()) signal(n);
}

void condition_variable::notify_all() noexcept {
  while (detail::wait_node* n = waiters_.pop_front()) signal(n);
}

// ---- wait_group ----------------------------------------------------------------------------------------

wait_group::wait_group(std::ptrdiff_t initial, std::string name) : count_(initial), name_(std::move(name)) {
  if (initial < 0)
    throw error(fmt::format("gr::wait_group: negative initial count {} for {}", initial,
                            label("wait_group", name_, this)));
}

wait_group::~wait_group() {
  if (!waiters_.empty())
    destroyed_with_waiters(waiters_, "wait_group", name_, this);
}

void wait_group::add(std::ptrdiff_t n) {
  std::ptrdiff_t sum;
  if (__builtin_add_overflow(count_, n, &sum))
    throw error(fmt::format("gr::wait_group::add: the counter of {} would overflow ({} {:+})",
                            label("wait_group", name_, this), count_, n));
  if (sum < 0)
    throw error(fmt::format("gr::wait_group::add: the counter of {} would go negative ({} {:+})",
                            label("wait_group", name_, this), count_, n));
  count_ = sum;
  if (count_ == 0)
    while (detail::wait_node* w = waiters_.pop_front()) signal(w);
}

bool wait_group::wait_until(time_point deadline) {
  detail::check_cancelled();
  if (count_ == 0) return true;
  return block_until(waiters_, {"wait on", "wait_group", this, &name_, &describe_wait}, deadline,
                     nothing_to_give_back);
}

void wait_group::wait() { wait_until(time_point::max()); }

std::string wait_group::describe_wait(const void* self) {
  const auto& wg = *static_cast<const wait_group*>(self);
  return fmt::format("{} (count {})", label("wait_group", wg.name_, &wg), wg.count_);
}

// ---- semaphore --------------------------------------------------------------------------------------------

semaphore::semaphore(std::ptrdiff_t initial, std::string name) : count_(initial), name_(std::move(name)) {
  if (initial < 0)
    throw error(fmt::format("gr::semaphore: negative initial count {} for {}", initial,
                            label("semaphore", name_, this)));
}

semaphore::~semaphore() {
  if (!waiters_.empty())
    destroyed_with_waiters(waiters_, "semaphore", name_, this);
}

bool semaphore::acquire_until(time_point deadline) {
  detail::check_cancelled();
  if (count_ > 0) {
    --count_;
    return true;
  }
  return block_until(waiters_, {"acquire", "semaphore", this, &name_}, deadline, [this] { release(1); });
}

void semaphore::acquire() { acquire_until(time_point::max()); }

bool semaphore::try_acquire() noexcept {
  if (count_ <= 0) return false;
  --count_;
  return true;
}

bool semaphore::try_acquire_until(time_point deadline) { return acquire_until(deadline); }

void semaphore::release(std::ptrdiff_t n) {
  if (n < 0)
    throw error(fmt::format("gr::semaphore::release: negative count {} for {}", n, label("semaphore", name_, this)));
  // Checked before any permit moves. Tasks wait only while count_ is 0, where n always fits.
  if (n > max() - count_)
    throw error(fmt::format("gr::semaphore::release: {} more permit(s) would overflow the count of {} ({} of at most {})",
                            n, label("semaphore", name_, this), count_, max()));
  // Waiters first, one permit each; the rest at once.
  for (; n > 0; --n) {
    detail::wait_node* w = waiters_.pop_front();
    if (!w) break;
    signal(w);  // the permit goes straight to the waiter
  }
  count_ += n;
}

}  // namespace gr
