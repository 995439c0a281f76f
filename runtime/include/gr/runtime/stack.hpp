// gr/runtime/stack.hpp: the memory a greenlet runs on.
//
//   gr::stack s = gr::allocate_stack(64 * 1024);   // from this thread's pool; mmap only on a miss
//   ...run a greenlet on [s.base, s.top())...
//   gr::release_stack(s);                          // back to the pool
//
// Kinds of stack, and how an overflow is caught:
//   - guarded: its own mmap, reserved at full size and committed by the kernel only as touched,
//     with a PROT_NONE guard page below. An overflow faults on the guard page, and gr's SIGSEGV
//     handler (on an alternate signal stack) prints
//       gr: stack overflow in greenlet <name or address> (stack <N> KiB)
//     (for a scheduler's task: task #<id> '<name>' and where it was spawned; see running_stack)
//     then the process dies as a segfault would.
//   - guarded_slot / unguarded: a slot of a large shared mapping (a slab). Each guard page of a
//     guarded stack splits a mapping, and the kernel caps a process at vm.max_map_count mappings
//     (65,530 by default), so those guard pages are spent within a process-wide budget under that
//     limit (about 28,000 stacks) and past it stacks come from slabs. Where the kernel has guard
//     regions (MADV_GUARD_INSTALL, Linux 6.13 and later), which cost no mapping, every slab slot
//     gets a guard page below it too (guarded_slot) and an overflow is caught as on a guarded
//     stack. On an older kernel a slot is unguarded: its lowest word holds a canary that the
//     greenlet layer checks on every switch away; a broken canary aborts with the same kind of
//     message, but an overflow that skips the canary word corrupts the slot below unseen.
//   - user: memory the caller supplied (see user_stack()); never allocated or freed by gr, canary
//     checked like an unguarded stack.
//
// Thread safety: allocate_stack() and release_stack() use the calling thread's pool and may be
// called from any thread; a stack released on another thread joins that thread's pool.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gr {

// stack: a region [base, base + size) that a greenlet's frames grow down into. A plain value:
// whoever got it from allocate_stack() owns it until it passes it to release_stack().
struct stack {
  enum class kind : std::uint8_t { none, guarded, unguarded, user, guarded_slot };

  void* base = nullptr;        // lowest usable address (just above the guard page, if any)
  std::size_t size = 0;        // usable bytes
  kind origin = kind::none;
  // colour: a cache colour, 0 to colours - 1. A layer that keeps hot data at the top of many
  // stacks (the scheduler puts each task's frame there, and a context switch saves registers just
  // below it) starts that data colour_offset() bytes below top(). Without it every stack's top
  // lines sit at the same offset in their page, and caches pick a line's set by its page offset
  // (and, in L2 and L3, a few bits above it): the tops of a thousand stacks would compete for
  // about an eighth of each cache's sets, and a lap of a ring of tasks would miss on every
  // switch. allocate_stack() gives successive new stacks successive colours (a pooled stack
  // keeps its own); user stacks get 0.
  std::uint8_t colour = 0;
  unsigned valgrind_id = 0;    // valgrind's stack registration, 0 when not registered

  // 32 colours a cache line apart span 2 KiB. A task blocked in a semaphore uses about 1.3 KiB of
  // its top page (a 640-byte frame, then 650 bytes of stack), so every one still fits in a single
  // resident page; with 64 colours (4 KiB) about a third of them would touch a second one.
  // BM_Sched_BlockedMemory gives 4.06 KiB per blocked task.
  static constexpr unsigned colours = 32;
  static constexpr std::size_t colour_step = 64;

  void* top() const noexcept { return static_cast<char*>(base) + size; }
  // colour_offset: how far below top() the hot data starts: colour * colour_step, wrapped to an
  // eighth of the stack, so a small stack gives up at most an eighth of its room to its colour
  // (an 8 KiB stack has 16 distinct offsets, 0 to 960 bytes; 16 KiB and more have all 32, 0 to
  // 1,984). Which colour a stack has depends on the thread's earlier allocations: code that runs
  // within an eighth of its stack's limit may overflow on one stack and not another.
  std::size_t colour_offset() const noexcept {
    std::size_t off = colour * colour_step;
    const std::size_t span = size / 8 / colour_step * colour_step;
    if (off >= span) [[unlikely]]  // small stacks only: no division on the usual path
      off = span ? off % span : 0;
    return off;
  }
  bool has_canary() const noexcept { return origin == kind::unguarded || origin == kind::user; }
  explicit operator bool() const noexcept { return base != nullptr; }
};

// default_stack_size: the size used when 0 is asked for: 256 KiB of address space, of which only
// the touched pages cost memory.
inline constexpr std::size_t default_stack_size = 256 * 1024;
// min_stack_size: smaller requests are rounded up to this (room for gr's own frames and a signal).
// Not room for everything libc does: glibc's printf to an unbuffered stream (stderr) puts a
// BUFSIZ (8 KiB) buffer on the stack, and overflows it. Ask for 16 KiB or more for such code.
inline constexpr std::size_t min_stack_size = 8 * 1024;

// allocate_stack: a stack of at least `size` usable bytes (0: default_stack_size), rounded up to
// whole pages. Takes one from this thread's pool when it can. Throws std::system_error when the
// kernel refuses the memory; the message names the size, how many stacks are live, and mentions
// vm.max_map_count when that limit is the cause.
stack allocate_stack(std::size_t size = 0);

// release_stack: gives a stack back. It is kept in this thread's pool for reuse: every guarded
// stack (at most the guard budget's worth), and slab stacks while the pool holds fewer than
// 1,024 stacks of that size (past that they return to their slab and their memory to the
// kernel). Pooled guarded stacks keep their share of the process's guard budget: another thread
// that runs out of it gets slab stacks until this one calls trim_stack_pool() or ends. User
// stacks are only forgotten. Never throws.
void release_stack(stack s) noexcept;

// user_stack: wraps caller-owned memory as a stack (no allocation). The memory must stay valid
// while a greenlet uses it and be at least min_stack_size bytes; throws gr::error otherwise.
stack user_stack(void* memory, std::size_t size);

// stack_stats: counters for tests and reports.
struct stack_stats {
  long long live = 0;              // this thread: allocated (or wrapped) minus released
  std::size_t pooled = 0;          // this thread: stacks waiting in the pool
  std::size_t guarded_live = 0;    // process: guarded stacks mapped (pooled ones included)
  std::size_t guard_budget = 0;    // process: how many guarded stacks may exist at once
  std::size_t unguarded_slots = 0; // process: slab slots carved so far (either layout)
};
stack_stats stack_statistics() noexcept;

// trim_stack_pool: unmaps this thread's pooled stacks (slab slots return to their slab): the
// memory a burst of tasks left in the pool, and the guard pages it holds of the process's budget.
void trim_stack_pool() noexcept;

// set_guard_budget: overrides the number of guarded stacks allowed at once (for tests and for
// programs that know their mapping needs). Returns the previous budget.
std::size_t set_guard_budget(std::size_t budget) noexcept;

namespace detail {
// set_slab_guard_pages: whether slabs mapped from now on try guard pages below their slots
// (guarded_slot) or use canaries (unguarded), for tests of the canary layout. Slabs already
// mapped keep theirs. Returns the previous setting (false after the kernel refused them).
bool set_slab_guard_pages(bool on) noexcept;

inline constexpr std::uint64_t canary_word = 0x67725f63616e6172ull;  // "gr_canar"

// canary_word_intact: whether the canary of a stack that has one (has_canary()) is unbroken.
// canary_intact: the same for any stack (one without a canary is always intact).
inline bool canary_word_intact(const stack& s) noexcept {
  return *static_cast<const std::uint64_t*>(s.base) == canary_word;
}
inline bool canary_intact(const stack& s) noexcept { return !s.has_canary() || canary_word_intact(s); }
inline void write_canary(const stack& s) noexcept {
  if (s.has_canary()) *static_cast<std::uint64_t*>(s.base) = canary_word;
}
// prepare_thread_stacks: makes this thread's stack pool now. Thread-locals are destroyed in the
// reverse order of their construction, so a layer whose thread-local releases stacks at thread
// exit (the scheduler) calls this first to make sure the pool outlives it. After the pool is gone
// releases go straight to the kernel.
void prepare_thread_stacks() noexcept;

// disown_stack / adopt_stack: a stack in use leaves the calling thread's count of live stacks
// (stack_stats::live) / joins it, so that the thread that finally releases it keeps balanced
// books: the scheduler's task frames kept past their thread's end by a task handle, disowned as
// the thread ends and adopted wherever the handle is dropped.
void disown_stack(const stack& s) noexcept;
void adopt_stack(const stack& s) noexcept;

// The overflow handler asks the layer above which stack is running and what runs on it. The
// function must be async-signal-safe (read thread-locals, no locks, no allocation), and so is
// everything it fills in: pointers to strings that live as long as what runs on the stack.
struct running_stack {
  const stack* stk = nullptr;
  bool task = false;              // a scheduler's task runs on it (else a plain greenlet)
  const char* label = nullptr;    // its name, may be null or empty
  const void* owner = nullptr;    // the greenlet's address
  unsigned long long id = 0;      // a task's id
  const char* file = nullptr;     // where a task was spawned, null or empty if unknown
  unsigned line = 0;
  std::size_t total = 0;          // the whole stack's size as asked for, when stk is only the part
                                  // below the task's frame (0: stk->size says it)
  // describe: fills in the fields after stk from owner, called by the overflow handler only once
  // the fault is known to be an overflow of stk (its guard page hit, or the stack pointer below
  // its base: a wild pointer elsewhere may have broken the owner too, and the fault then goes to
  // the previous handler untouched). Null: stk and owner are all there is.
  void (*describe)(running_stack& self) noexcept = nullptr;
};

// canary_failure: the message of a broken canary on `rs.stk`, then abort. Cold and never
// inlined: every switch checks the canary, and under LTO the diagnosis (a 512-byte message
// buffer) would otherwise land in the switch paths' stack frames.
[[noreturn, gnu::cold, gnu::noinline]]
void canary_failure(const running_stack& rs) noexcept;
using running_stack_query = bool (*)(running_stack& out) noexcept;
// install_overflow_handler: installs the process's SIGSEGV handler once (chaining to whatever
// was there) and this thread's alternate signal stack. Idempotent and cheap after the first call.
void install_overflow_handler(running_stack_query query);
}  // namespace detail

}  // namespace gr
