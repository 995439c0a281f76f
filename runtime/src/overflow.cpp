// Stack-overflow diagnosis: a SIGSEGV handler on an alternate signal stack that recognises a hit on
// the running greenlet's guard page, and the message of a broken canary.
//
// Everything the handler calls is async-signal-safe: it formats into a local buffer and write(2)s
// it, asks the greenlet layer which stack runs through a function that only reads thread-locals,
// and re-raises by restoring the default action and returning into the faulting instruction.
#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

namespace gr::detail {
namespace {

std::atomic<running_stack_query> g_query{nullptr};
struct sigaction g_previous {};
std::once_flag g_install_once;

// A tiny append-only buffer for the handler: no allocation, no locale, no stdio.
struct sig_buf {
  char data[512];
  std::size_t n = 0;
  void put(const char* s) noexcept {
    while (*s && n < sizeof data) data[n++] = *s++;
  }
  void put_dec(unsigned long long v) noexcept {
    char tmp[24];
    int i = 0;
    do tmp[i++] = static_cast<char>('0' + v % 10); while ((v /= 10) && i < 24);
    while (i && n < sizeof data) data[n++] = tmp[--i];
  }
  void put_hex(const void* p) noexcept {
    auto v = reinterpret_cast<std::uintptr_t>(p);
    put("0x");
    char tmp[16];
    int i = 0;
    do tmp[i++] = "0123456789abcdef"[v & 15]; while ((v >>= 4) && i < 16);
    while (i && n < sizeof data) data[n++] = tmp[--i];
  }
  void flush(int fd) noexcept {
    std::size_t off = 0;
    while (off < n) {
      ssize_t w = ::write(fd, data + off, n - off);
      if (w <= 0) break;
      off += static_cast<std::size_t>(w);
    }
  }
};

// describe_overflow: "gr: stack overflow in greenlet <name or address> (stack <N> KiB)<how>", or
// for a task "gr: stack overflow in task #<id> '<name>' (stack <N> KiB, spawned at <file>:<line>)<how>".
void describe_overflow(sig_buf& b, const running_stack& rs, const char* how) noexcept {
  b.put("gr: stack overflow in ");
  if (rs.task) {
    b.put("task #");
    b.put_dec(rs.id);
    if (rs.label && *rs.label) {
      b.put(" '");
      b.put(rs.label);
      b.put("'");
    }
  } else if (rs.label && *rs.label) {
    b.put("greenlet ");
    b.put(rs.label);
  } else {
    b.put("greenlet ");
    b.put_hex(rs.owner);
  }
  b.put(" (stack ");
  b.put_dec((rs.total ? rs.total : rs.stk->size) / 1024);
  b.put(" KiB");
  if (rs.file && *rs.file) {
    b.put(", spawned at ");
    b.put(rs.file);
    b.put(":");
    b.put_dec(rs.line);
  }
  b.put(")");
  b.put(how);
  b.put("\n");
}

// stack_pointer: the faulting context's stack pointer (0 where unknown).
std::uintptr_t stack_pointer(const void* uctx) noexcept {
#if defined(__x86_64__)
  return static_cast<std::uintptr_t>(static_cast<const ucontext_t*>(uctx)->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return static_cast<std::uintptr_t>(static_cast<const ucontext_t*>(uctx)->uc_mcontext.sp);
#else
  (void)uctx;
  return 0;
#endif
}

// How far below a stack's base a stack pointer still counts as that stack's overflow (rather than
// a switch to some other stack the greenlet layer does not know of): frames that big are rare.
constexpr std::uintptr_t overflow_reach = 1u << 20;
// How far below the stack pointer a stack access may fault: the red zone, and a probe's reach.
constexpr std::uintptr_t below_sp = 4096;

// previous_handles: whether whoever had SIGSEGV before us has a handler of its own (a JIT, a
// runtime that traps on purpose), which a fault that is not certainly an overflow goes to.
bool previous_handles() noexcept {
  if (g_previous.sa_flags & SA_SIGINFO) return g_previous.sa_sigaction != nullptr;
  return g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler;
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  const int saved_errno = errno;
  running_stack rs;
  running_stack_query q = g_query.load(std::memory_order_relaxed);
  if (q && q(rs) && rs.stk && rs.stk->base) {
    const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
    const auto base = reinterpret_cast<std::uintptr_t>(rs.stk->base);
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const std::uintptr_t sp = stack_pointer(uctx);
    // The guard page hit; or (any stack) the stack pointer below the base and the fault a stack
    // access near it: a frame larger than the guard page stepped over it (alloca, a big local
    // array), or a slab stack ran into the one below it, and this access faulted beyond. A fault
    // elsewhere with the stack pointer low (code on a stack of its own below ours, a null
    // pointer) is not claimed, and the second kind goes to a previous handler if there is one.
    const bool guard_page = rs.stk->origin == stack::kind::guarded || rs.stk->origin == stack::kind::guarded_slot;
    const bool guard_hit = guard_page && addr < base && addr >= base - page;
    const bool sp_below = sp && sp < base && base - sp <= overflow_reach && addr < base && addr + below_sp >= sp &&
                          !previous_handles();
    if (guard_hit || sp_below) {
      if (rs.describe) rs.describe(rs);
      sig_buf b;
      describe_overflow(b, rs,
                        guard_hit ? ": hit the guard page"
                        : guard_page
                            ? ": its stack pointer is past the stack's end (a frame bigger than the guard page "
                              "stepped over it)"
                            : ": its stack pointer is past the stack's end");
      b.flush(STDERR_FILENO);
      // Die as a segfault would: the default action, taken when the access faults again.
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGSEGV, &dfl, nullptr);
      errno = saved_errno;
      return;
    }
  }
  // Not ours: hand it to whoever had SIGSEGV before us.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, uctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    g_previous.sa_handler(sig);
  } else {
    ::sigaction(SIGSEGV, &g_previous, nullptr);
  }
  errno = saved_errno;
}

// This thread's alternate signal stack, made once and freed at thread exit.
struct alt_stack {
  void* mem = nullptr;
  std::size_t size = 0;
  alt_stack() {
    stack_t cur{};
    if (::sigaltstack(nullptr, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;  // someone set one
    size = 64 * 1024;
    mem = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      mem = nullptr;
      return;
    }
    stack_t ss{};
    ss.ss_sp = mem;
    ss.ss_size = size;
    ::sigaltstack(&ss, nullptr);
  }
  ~alt_stack() {
    if (!mem) return;
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    ::sigaltstack(&ss, nullptr);
    ::munmap(mem, size);
  }
};

}  // namespace

void install_overflow_handler(running_stack_query query) {
  static thread_local bool thread_done = false;
  if (thread_done) return;
  thread_done = true;
  static thread_local alt_stack alt;
  (void)alt;
  g_query.store(query, std::memory_order_relaxed);
  std::call_once(g_install_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGSEGV, &sa, &g_previous);
  });
}

void canary_failure(const running_stack& rs) noexcept {
  sig_buf b;
  describe_overflow(b, rs, ": its canary at the low end of the stack was overwritten");
  b.flush(STDERR_FILENO);
  std::abort();
}

}  // namespace gr::detail
