// Stacks: guarded mmaps within a budget, slab slots past it, a per-thread pool in front of both.
//
// Invariants:
//   - g_guarded_live counts guarded mappings that exist (in use or pooled); it never exceeds
//     g_guard_budget except transiently inside map_guarded(), which backs out on overshoot.
//   - A pooled stack is exactly as allocate_stack() would return it: page-rounded size, registered
//     with valgrind, canary not yet written (allocate_stack writes it).
//   - Slab slots are never unmapped; a slot is either carved out (owned by some thread's pool or a
//     user) or on its slab class's free list. A slab has one of two layouts, fixed when it is
//     mapped: guard pages (a guard region below every slot, MADV_GUARD_INSTALL, Linux 6.13 and
//     later: no mapping split, so no vm.max_map_count cost), or canaries, where slots are 16
//     bytes below page alignment, so slot i's canary (its lowest word) shares a page with the top
//     of slot i - 1, and that page is given back to the kernel only while both slots are free
//     (slab::used says which are carved out).
//   - Under ASan, memory leaving gr's hands (unmapped, back on a slab's free list, a user stack
//     forgotten) carries no poison; a pooled stack may, and allocate_stack() clears it.
#include <gr/runtime/detail/sanitizer.hpp>
#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define GR_HAVE_VALGRIND 1
#endif

namespace gr {
namespace {

std::size_t page_size() noexcept {
  static const std::size_t p = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

// A page size is a power of two (POSIX leaves it open; every kernel gr runs on does it), so the
// rounding is a mask: allocate_stack() runs on every spawn, and a 64-bit division costs tens of
// cycles.
std::size_t round_to_pages(std::size_t n) noexcept {
  const std::size_t p = page_size();
  GR_DEBUG_ASSERT((p & (p - 1)) == 0, "the page size is not a power of two");
  return (n + p - 1) & ~(p - 1);
}

std::size_t read_max_map_count() noexcept {
  std::ifstream f("/proc/sys/vm/max_map_count");
  std::size_t n = 0;
  if (f >> n && n > 0) return n;
  return 65530;
}

// Each guarded stack costs two mappings (the guard page and the stack). Leave room for the
// program's own mappings (libraries, malloc arenas, sanitizer shadow) and for the slabs.
std::size_t default_guard_budget() noexcept {
  const std::size_t maps = read_max_map_count();
  const std::size_t reserve = 8192;
  return maps > reserve ? (maps - reserve) / 2 : 0;
}

std::atomic<std::size_t> g_guarded_live{0};
std::atomic<std::size_t> g_guard_budget{default_guard_budget()};

void register_valgrind(stack& s) noexcept {
#if GR_HAVE_VALGRIND
  s.valgrind_id = VALGRIND_STACK_REGISTER(s.base, s.top());
#else
  (void)s;
#endif
}

void deregister_valgrind(stack& s) noexcept {
#if GR_HAVE_VALGRIND
  if (s.valgrind_id) VALGRIND_STACK_DEREGISTER(s.valgrind_id);
#endif
  s.valgrind_id = 0;
}

std::size_t count_mappings() noexcept {
  std::ifstream f("/proc/self/maps");
  std::size_t n = 0;
  std::string line;
  while (std::getline(f, line)) ++n;
  return n;
}

[[noreturn]] void throw_map_failure(int err, std::size_t size, const char* what) {
  const std::size_t maps = count_mappings();
  const std::size_t limit = read_max_map_count();
  std::string msg = fmt::format("gr: cannot {} a {} KiB stack ({} guarded stacks mapped, {} of {} mappings in use",
                                what, size / 1024, g_guarded_live.load(std::memory_order_relaxed), maps, limit);
  if (err == ENOMEM && maps + 16 >= limit)
    msg += "; the kernel's vm.max_map_count limit is the cause: raise it with `sysctl vm.max_map_count=N`";
  msg += ")";
  throw std::system_error(err, std::generic_category(), msg);
}

// ---- slabs: unguarded stacks carved out of large shared mappings ---------------------------------

// How far below a page boundary each slot of a canary slab starts (see map_slab).
constexpr std::size_t slab_shift = 16;

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13's uapi value; older headers lack it
#endif

// Whether new slabs try guard pages: on unless a test asks for the canary layout, and off for
// good once the kernel refuses them (before Linux 6.13: EINVAL).
std::atomic<bool> g_slab_guards{true};

// slab: one mapping, carved into `used.size()` slots of `size` bytes, `stride` bytes apart. Slot
// i's base is first + i * stride.
//   - guards: a guard page sits below every slot (stride = size + a page), and a slot's pages are
//     its own.
//   - canaries (stride = size): slot i's top page also holds the canary of slot i + 1 (16 bytes),
//     so that page goes back to the kernel only once both slots are free (the last slot's top
//     page holds nobody else's, and slot 0's canary sits alone in the mapping's leading page).
struct slab {
  char* first = nullptr;  // slot 0's base
  std::size_t size = 0;
  std::size_t stride = 0;
  bool guards = false;
  std::vector<bool> used;  // which slots are carved out
};

// slab_class: the free slots of one size and layout (a slot's layout is its slab's, and a test
// may switch the layout of new slabs: the free lists of the two never mix).
struct slab_class {
  std::size_t size;
  bool guards;
  std::vector<void*> free;
};

// The slabs, all guarded by `mutex`. Made on first use and never destroyed: a stack may be
// released during static destruction (a task handle at namespace scope), after a static object
// would have gone.
struct slab_registry {
  std::mutex mutex;
  std::vector<slab_class> classes;
  std::map<std::uintptr_t, slab> maps;  // by slot 0's base
  std::size_t slots = 0;
};
slab_registry& slabs() noexcept {
  static slab_registry* const r = new slab_registry;
  return *r;
}

// slab_of: the slab `base` (a slot's base) belongs to, and the slot's index in it. Under reg.mutex.
std::pair<slab*, std::size_t> slab_of(slab_registry& reg, const void* base) noexcept {
  const auto at = reinterpret_cast<std::uintptr_t>(base);
  auto it = reg.maps.upper_bound(at);
  GR_ASSERT(it != reg.maps.begin(), "an unguarded stack was released that no slab holds");
  slab& sl = (--it)->second;
  return {&sl, (at - it->first) / sl.stride};
}

// map_slab: a new slab of `size`-byte slots in `reg` (under its mutex), its slots pushed on
// `free`: with guard pages if `guards` and the kernel has them (false: it had not, and nothing
// was made), else with canaries.
bool map_slab(slab_registry& reg, std::vector<void*>& free, std::size_t size, bool guards) {
  // About 16 MiB a mapping, between 8 and 1,024 slots: few mappings for a million stacks.
  const std::size_t page = page_size();
  const std::size_t stride = guards ? size + page : size;
  const std::size_t slots = std::clamp<std::size_t>((16u << 20) / stride, 8, 1024);
  // Canaries: each slot starts slab_shift bytes below a page boundary, so its low-end canary
  // sits in the top page of the slot below (resident anyway while that one is in use) instead of
  // costing a page of its own; slot 0's canary sits in one leading page. Guards: slot 0's guard
  // page leads.
  const std::size_t lead = page;
  const std::size_t bytes = guards ? slots * stride : lead + slots * size;  // a guard ends each stride
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                   -1, 0);
  if (p == MAP_FAILED) throw_map_failure(errno, size, "map a slab for");
  char* first = static_cast<char*>(p) + lead - (guards ? 0 : slab_shift);
  if (guards) {
    // One guard region a slot: a marker in the page table, no mapping split. Kept through the
    // MADV_DONTNEED that gives a free slot's pages back.
    for (std::size_t i = 0; i < slots; ++i) {
      if (::madvise(first + i * stride - page, page, MADV_GUARD_INSTALL) != 0) {
        ::munmap(p, bytes);
        return false;
      }
    }
  }
  try {
    reg.maps.emplace(reinterpret_cast<std::uintptr_t>(first), slab{first, size, stride, guards, std::vector<bool>(slots)});
    free.reserve(free.size() + slots);
  } catch (...) {
    reg.maps.erase(reinterpret_cast<std::uintptr_t>(first));
    ::munmap(p, bytes);
    throw;
  }
  for (std::size_t i = slots; i-- > 0;) free.push_back(first + i * stride);
  reg.slots += slots;
  return true;
}

slab_class& class_of(slab_registry& reg, std::size_t size, bool guards) {
  auto it = std::find_if(reg.classes.begin(), reg.classes.end(),
                         [&](const slab_class& c) { return c.size == size && c.guards == guards; });
  if (it == reg.classes.end()) it = reg.classes.insert(reg.classes.end(), slab_class{size, guards, {}});
  return *it;
}

stack take_slab_slot(std::size_t size) {
  slab_registry& reg = slabs();
  std::lock_guard lock(reg.mutex);
  slab_class* c = &class_of(reg, size, g_slab_guards.load(std::memory_order_relaxed));
  // The kernel's refusal (EINVAL before Linux 6.13) holds for the process: one try.
  if (c->free.empty() && c->guards && !map_slab(reg, c->free, size, true)) {
    g_slab_guards.store(false, std::memory_order_relaxed);
    c = &class_of(reg, size, false);
  }
  if (c->free.empty()) map_slab(reg, c->free, size, false);
  stack s;
  s.base = c->free.back();
  c->free.pop_back();
  s.size = size;
  auto [sl, i] = slab_of(reg, s.base);
  s.origin = sl->guards ? stack::kind::guarded_slot : stack::kind::unguarded;
  sl->used[i] = true;
  return s;
}

void return_slab_slot(stack& s) noexcept {
  // The memory goes back to the kernel; the address range stays with the slab. A guarded slot's
  // pages are its own: all of them go, before the lock. A canary slot's whole pages go; so does
  // the page its top shares with the canary of the slot above if that slot is free too, and the
  // page below it (the top of the slot below, with this slot's canary) if the slot below is. One
  // madvise for the lot (three calls made a million-stack teardown a third slower), under the
  // lock: a neighbour taken meanwhile must not lose a page.
  const bool guarded = s.origin == stack::kind::guarded_slot;
  if (guarded) ::madvise(s.base, s.size, MADV_DONTNEED);
  const std::size_t page = page_size();
  auto from = (reinterpret_cast<std::uintptr_t>(s.base) + page - 1) / page * page;
  auto to = reinterpret_cast<std::uintptr_t>(s.top()) / page * page;
  slab_registry& reg = slabs();
  std::lock_guard lock(reg.mutex);
  auto [sl, i] = slab_of(reg, s.base);
  sl->used[i] = false;
  if (!guarded) {
    if (i + 1 == sl->used.size() || !sl->used[i + 1]) to += page;  // this slot's top page
    if (i == 0 || !sl->used[i - 1]) from -= page;                   // the page below it
    if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
  }
  for (auto& c : reg.classes) {
    if (c.size == s.size && c.guards == guarded) {
      // The vector has room for every slot of its class (reserved with each new slab).
      c.free.push_back(s.base);
      return;
    }
  }
  GR_ASSERT(false, "an unguarded stack was released whose size no slab has");
}

// ---- guarded stacks --------------------------------------------------------------------------------

bool map_guarded(std::size_t size, stack& out) {
  if (g_guarded_live.fetch_add(1, std::memory_order_relaxed) >= g_guard_budget.load(std::memory_order_relaxed)) {
    g_guarded_live.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  const std::size_t guard = page_size();
  void* p = ::mmap(nullptr, size + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    g_guarded_live.fetch_sub(1, std::memory_order_relaxed);
    if (err == ENOMEM) return false;  // maybe the map count; a slab may still fit
    throw_map_failure(err, size, "map");
  }
  if (::mprotect(p, guard, PROT_NONE) != 0) {
    // Splitting the mapping failed: the map count is exhausted. Stop spending guard pages.
    ::munmap(p, size + guard);
    const std::size_t live = g_guarded_live.fetch_sub(1, std::memory_order_relaxed) - 1;
    g_guard_budget.store(live, std::memory_order_relaxed);
    return false;
  }
  out.base = static_cast<char*>(p) + guard;
  out.size = size;
  out.origin = stack::kind::guarded;
  return true;
}

void unmap_guarded(stack& s) noexcept {
  const std::size_t guard = page_size();
  ::munmap(static_cast<char*>(s.base) - guard, s.size + guard);
  g_guarded_live.fetch_sub(1, std::memory_order_relaxed);
}

void give_back_to_os(stack& s) noexcept {
  deregister_valgrind(s);
  // ASan keeps the redzones of frames that never returned (the first frames of a greenlet that
  // finished) poisoned. Clear them before the range can be mapped again, by gr or anyone else:
  // uninstrumented code (ASan's own runtime included) would trip over the stale shadow.
  detail::san_reuse(s.base, s.size);
  if (s.origin == stack::kind::guarded)
    unmap_guarded(s);
  else
    return_slab_slot(s);
}

// ---- the per-thread pool -----------------------------------------------------------------------------

// A few size classes, each a LIFO of stacks (the most recently used stack is the warmest).
// Guarded stacks are always kept: with a cap (it was 1,024 a class for every kind), each one
// released past it was unmapped and the next spawn mapped a fresh one (mmap, mprotect, munmap and
// a page fault: 10 to 20 us instead of 0.25, a user's 5,000-task rounds). Their number is bounded
// by the process's guard budget (about 28,000), and so is the memory a burst leaves here: the
// pages its tasks touched, usually one or two a stack, until trim_stack_pool() or the thread's end.
// Slab stacks (the ones past the guard budget, a million tasks' worth) are kept only while their
// class holds fewer than max_slab_per_class stacks (guarded ones included): past it they go back
// to their slab, whose pages are given back to the kernel there (a madvise and a lock, no new
// mapping), so a burst of a million tasks does not keep gigabytes resident. A pool's guarded
// stacks hold their share of the process's guard budget: a new stack of another size takes this
// thread's share back when the budget is spent (reclaim_guard_budget); other threads' shares
// stay theirs until they trim.
struct thread_pool {
  static constexpr std::size_t max_classes = 8;
  static constexpr std::size_t max_slab_per_class = 1024;

  struct size_class {
    std::size_t size = 0;
    std::vector<stack> free;
  };
  size_class classes[max_classes];
  long long live = 0;

  size_class* find(std::size_t size) noexcept {
    for (auto& c : classes) {
      if (c.size == size) return &c;
      if (c.size == 0) {
        c.size = size;
        return &c;
      }
    }
    return nullptr;
  }

  void trim() noexcept {
    for (auto& c : classes) {
      for (auto& s : c.free) give_back_to_os(s);
      c.free.clear();
    }
  }
  ~thread_pool() { trim(); }
};

// One pointer per thread, initial-exec: a pool hit costs no __tls_get_addr.
thread_local thread_pool* tls_pool __attribute__((tls_model("initial-exec"))) = nullptr;

// Set once the thread's pool is destroyed (thread exit): later releases go straight to the OS.
thread_local bool tls_pool_gone __attribute__((tls_model("initial-exec"))) = false;

struct thread_pool_owner {
  thread_pool pool;
  ~thread_pool_owner() {
    tls_pool = nullptr;
    tls_pool_gone = true;
  }
};

// pool: this thread's pool, made on first use; null once the thread's thread-locals are being
// destroyed and the pool is gone.
// The first use is out of line, so the hot callers need no stack frame for it.
[[gnu::noinline, gnu::cold]] thread_pool* make_pool() {
  if (tls_pool_gone) return nullptr;
  static thread_local thread_pool_owner owner;
  tls_pool = &owner.pool;
  return tls_pool;
}
inline thread_pool* pool() {
  if (tls_pool) [[likely]]
    return tls_pool;
  return make_pool();
}

}  // namespace

namespace {
// reclaim_guard_budget: unmaps this thread's pooled guarded stacks of sizes other than `size`,
// whose guard pages the budget counts; true if there was any. Another thread's pool is its own
// (unsynchronized): trim_stack_pool() on that thread gives its share back.
bool reclaim_guard_budget(thread_pool* tp, std::size_t size) noexcept {
  if (!tp) return false;
  bool freed = false;
  for (auto& c : tp->classes) {
    if (c.size == size || c.size == 0) continue;
    auto kept = c.free.begin();
    for (auto& st : c.free) {
      if (st.origin == stack::kind::guarded) {
        give_back_to_os(st);
        freed = true;
      } else {
        *kept++ = st;
      }
    }
    c.free.erase(kept, c.free.end());
  }
  return freed;
}

// new_stack: a pool miss: a fresh mapping (or slab slot), registered with valgrind. Out of line,
// so the pool hit that allocate_stack() makes on almost every spawn needs no stack frame.
[[gnu::noinline]] stack new_stack(std::size_t size) {
  static thread_local unsigned next_colour = 0;
  stack s;
  // The guard budget spent, maybe by this thread's own pool of another size (a burst of small
  // tasks, then a deep recursion asking for a big stack): that share comes back first.
  if (!map_guarded(size, s) && !(reclaim_guard_budget(tls_pool, size) && map_guarded(size, s)))
    s = take_slab_slot(size);
  s.colour = static_cast<std::uint8_t>(next_colour++ % stack::colours);
  register_valgrind(s);
  return s;
}

// forget_user_stack / release_unpooled: release_stack()'s rare cases, out of line for the same
// reason.
[[gnu::noinline]] void forget_user_stack(stack s) noexcept {
  deregister_valgrind(s);
  detail::san_reuse(s.base, s.size);  // the memory goes back to its owner without our poison
}
[[gnu::noinline]] void release_unpooled(stack s) noexcept { give_back_to_os(s); }
// pool_push_growing: c.free.push_back(s) when the vector must grow first. Without the memory
// to grow it, the stack goes back to the kernel instead.
[[gnu::noinline]] void pool_push_growing(thread_pool::size_class& c, stack s) noexcept {
  try {
    c.free.push_back(s);
  } catch (const std::bad_alloc&) {
    give_back_to_os(s);
  }
}
}  // namespace

stack allocate_stack(std::size_t size) {
  // No 64-bit kernel maps this much, and beyond it the page rounding and the slab arithmetic
  // (slots * size) would wrap around and hand out a stack smaller than its size says.
  constexpr std::size_t max_request = std::numeric_limits<std::size_t>::max() / 1024;  // 16 PiB
  if (size > max_request) [[unlikely]]
    throw_map_failure(ENOMEM, size, "map");
  size = round_to_pages(std::max(size == 0 ? default_stack_size : size, min_stack_size));
  thread_pool* tp = pool();
  thread_pool::size_class* c = tp ? tp->find(size) : nullptr;
  stack s;
  if (c && !c->free.empty()) [[likely]] {
    s = c->free.back();
    c->free.pop_back();
    detail::san_reuse(s.base, s.size);
  } else {
    s = new_stack(size);
  }
  detail::write_canary(s);
  if (tp) ++tp->live;
  return s;
}

void release_stack(stack s) noexcept {
  if (!s) return;
  thread_pool* tp = pool();
  if (tp) --tp->live;
  if (s.origin == stack::kind::user) [[unlikely]] {
    forget_user_stack(s);
    return;
  }
  thread_pool::size_class* c = tp ? tp->find(s.size) : nullptr;
  if (c && (s.origin == stack::kind::guarded || c->free.size() < thread_pool::max_slab_per_class)) [[likely]] {
    if (c->free.size() < c->free.capacity()) [[likely]] {
      // Tell the compiler push_back cannot reallocate here: then this path needs no stack frame.
      if (c->free.size() == c->free.capacity()) __builtin_unreachable();
      c->free.push_back(s);
    } else {
      pool_push_growing(*c, s);
    }
    return;
  }
  release_unpooled(s);
}

stack user_stack(void* memory, std::size_t size) {
  if (!memory) throw error("gr::user_stack: the stack memory is null");
  // Align the usable range to 16 bytes at both ends, as the ABI wants of a stack; the minimum
  // applies to what is left.
  auto lo = (reinterpret_cast<std::uintptr_t>(memory) + 15) & ~std::uintptr_t{15};
  auto hi = (reinterpret_cast<std::uintptr_t>(memory) + size) & ~std::uintptr_t{15};
  if (size < min_stack_size || hi < lo || hi - lo < min_stack_size)
    throw error(fmt::format("gr::user_stack: {} bytes at {} leave less than the minimum stack of {} bytes once "
                            "aligned to 16",
                            size, memory, min_stack_size));
  stack s;
  s.base = reinterpret_cast<void*>(lo);
  s.size = hi - lo;
  s.origin = stack::kind::user;
  register_valgrind(s);
  detail::write_canary(s);
  if (thread_pool* tp = pool()) ++tp->live;
  return s;
}

stack_stats stack_statistics() noexcept {
  stack_stats st;
  if (tls_pool) {
    st.live = tls_pool->live;
    for (auto& c : tls_pool->classes) st.pooled += c.free.size();
  }
  st.guarded_live = g_guarded_live.load(std::memory_order_relaxed);
  st.guard_budget = g_guard_budget.load(std::memory_order_relaxed);
  slab_registry& reg = slabs();
  std::lock_guard lock(reg.mutex);
  st.unguarded_slots = reg.slots;
  return st;
}

void detail::prepare_thread_stacks() noexcept { (void)pool(); }

void detail::disown_stack(const stack& s) noexcept {
  if (!s) return;
  if (thread_pool* tp = tls_pool) --tp->live;  // no pool (gone at thread exit): nothing counts it
}

void detail::adopt_stack(const stack& s) noexcept {
  if (!s) return;
  if (thread_pool* tp = pool()) ++tp->live;
}

void trim_stack_pool() noexcept {
  if (tls_pool) tls_pool->trim();
}

std::size_t set_guard_budget(std::size_t budget) noexcept {
  return g_guard_budget.exchange(budget, std::memory_order_relaxed);
}

bool detail::set_slab_guard_pages(bool on) noexcept { return g_slab_guards.exchange(on, std::memory_order_relaxed); }

}  // namespace gr
