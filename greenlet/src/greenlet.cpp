// The greenlet switch, on Boost.Context's fcontext. This is the only file of gr that includes
// <boost/context/detail/fcontext.hpp>.
//
// Invariants:
//   - thread.current is the greenlet whose frames are on the CPU; every other active greenlet of
//     the thread is suspended inside jump() with its registers in ctx_.
//   - The C++ runtime's per-thread exception globals (caught-exception stack, uncaught count)
//     always hold the running greenlet's state; a suspended greenlet's own state is in its eh_.
//   - A switch carries the switcher's address in transfer_t::data and the value in the switcher's
//     pass_ (a direct-suspended greenlet gets the value itself as data: see
//     gr_fcontext_tail_switch). A null transfer_t::fctx means the inject trampoline already did
//     the resume bookkeeping: then data is the value, and what to raise, if anything, is in
//     pending_throw_.
//   - exc_ is set only on a dead greenlet, from its death until the resumer rethrows it.
//   - inject_pending_ == static_cast<bool>(inject_), always: inject_ is written only through
//     greenlet_access::set_injection and take_injection, which keep both. The switch tests the
//     byte, which sits in the greenlet's first cache line with every other field a switch
//     touches; inject_ does not (see greenlet.hpp).
//   - checks_canary_ == stack_.has_canary(), always: set with stack_ (greenlet_access::set_stack),
//     the only writer of stack_'s origin.
//   - A dead greenlet has no live frames: body() destroys every local before its final jump.
//   - parent_ of a non-root greenlet exists: ~greenlet passes its children to its own parent. A
//     greenlet whose parent_ is not a root sits in that parent's child list (first_child_,
//     next_sibling_, prev_link_); a root keeps none (prev_link_ is null), as it outlives them. While
//     kill() unwinds a greenlet, its parent_ is the killer and its old parent is in the thread's
//     kill frames, which ~greenlet updates too (the old parent, or the victim, may be destroyed
//     meanwhile).
#include <gr/greenlet/greenlet.hpp>

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <utility>

namespace gr {

namespace ctx = boost::context::detail;

namespace detail {

// kill_frame: a kill() in progress, on the killer's stack. ~greenlet keeps it valid: when `home`
// is destroyed it becomes home's parent; when `victim` is destroyed it becomes null.
struct kill_frame {
  greenlet* victim;
  greenlet* home;     // the victim's parent before the kill, given back when the kill ends
  kill_frame* outer;  // the thread's other kills in progress (they need not end in LIFO order)
};

// greenlet_thread: one per thread that uses greenlets; holds the root and the running greenlet.
// Owned by the thread (see this_thread()); reached through one initial-exec thread-local pointer.
struct greenlet_thread : greenlet_thread_head {  // current: see greenlet_thread_head
  eh_state* eh = nullptr;        // this thread's __cxa_eh_globals
  std::size_t live = 0;          // non-root greenlets created here and not yet destroyed
  kill_frame* kills = nullptr;   // the kills in progress on this thread
  bool orphaned = false;         // the thread's thread-locals are going and greenlets remain: the
                                 // last of them to go frees this state (greenlet::leave_thread)
  alignas(64) greenlet root;  // a line of its own, like a task frame's greenlet (see greenlet.hpp)

  greenlet_thread() : root(greenlet::root_tag{}, this) {
    current = &root;
    eh = reinterpret_cast<eh_state*>(abi::__cxa_get_globals());
  }
};

}  // namespace detail

namespace {

// fcontext_jump / fcontext_ontop: jump_fcontext and ontop_fcontext, entered by push + jmp rather
// than by call. jump_fcontext leaves by an indirect jmp to the target's saved return address, so a
// call into it pushes a return-stack-buffer entry that no ret ever pops: after every switch each
// ret between the resumed code and the switch is mispredicted (measured: raw fcontext 7 ns a switch
// with no call level above it, 16 ns with one, 23 ns with two). Entered by push + jmp, the return
// stack stays balanced, and when both sides suspended at the same call chain (a ping-pong, a
// round-robin ring) every ret on the way out is predicted.
//
// The asm steps over the 128-byte red zone first (the compiler may keep data below the stack
// pointer), so a suspended context's stack pointer after its return is ctx + 0x48 + 128
// (tools/gdb/gr.py relies on it). It stores the context jump_fcontext is about to save in *save
// itself, so a greenlet resumed by the direct path (gr_fcontext_tail_jump: no resume
// bookkeeping) still finds its switcher's ctx_ up to date. jump_fcontext keeps the callee-saved
// registers, mxcsr and the x87 control word; everything a call may clobber is declared clobbered.
#if defined(__x86_64__) && !defined(GR_PLAIN_FCONTEXT_CALL)
#define GR_FCONTEXT_ASM 1
#define GR_FCONTEXT_CLOBBERS                                                                             \
  "rcx", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", \
      "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", "st(1)", "st(2)",   \
      "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "mm0", "mm1", "mm2", "mm3", "mm4", "mm5", "mm6", "mm7"
#define GR_FCONTEXT_ENTER      \
  "sub $128, %%rsp\n\t"      \
  "lea 1f(%%rip), %%r8\n\t"  \
  "push %%r8\n\t"            \
  "lea -0x40(%%rsp), %%r9\n\t" \
  "mov %%r9, (%[save])\n\t"  \
  "jmp *%[fn]\n"              \
  "1:\n\t"                   \
  "add $128, %%rsp"

[[gnu::always_inline]] inline ctx::transfer_t fcontext_jump(ctx::fcontext_t to, void* data, void** save) noexcept {
  void* fctx;
  void* out;
  asm volatile(GR_FCONTEXT_ENTER
               : "=a"(fctx), "=d"(out), "+D"(to), "+S"(data)
               : [fn] "r"(&ctx::jump_fcontext), [save] "r"(save)
               : GR_FCONTEXT_CLOBBERS);
  return {fctx, out};
}

[[gnu::always_inline]] inline ctx::transfer_t fcontext_ontop(ctx::fcontext_t to, void* data, void** save,
                                                            ctx::transfer_t (*fn)(ctx::transfer_t)) noexcept {
  void* fctx;
  void* out = reinterpret_cast<void*>(fn);
  asm volatile(GR_FCONTEXT_ENTER
               : "=a"(fctx), "+d"(out), "+D"(to), "+S"(data)
               : [fn] "r"(&ctx::ontop_fcontext), [save] "r"(save)
               : GR_FCONTEXT_CLOBBERS);
  return {fctx, out};
}
#undef GR_FCONTEXT_ENTER
#undef GR_FCONTEXT_CLOBBERS
#else
// Resumed greenlets store their switcher's context (resumed(), entry(), inject_trampoline()).
inline ctx::transfer_t fcontext_jump(ctx::fcontext_t to, void* data, void**) noexcept {
  return ctx::jump_fcontext(to, data);
}
inline ctx::transfer_t fcontext_ontop(ctx::fcontext_t to, void* data, void**,
                                      ctx::transfer_t (*fn)(ctx::transfer_t)) noexcept {
  return ctx::ontop_fcontext(to, data, fn);
}
#endif

// Direct resume. gr_fcontext_tail_jump(to, data, save) is jump_fcontext(to, data) entered by a
// tail call: the suspended greenlet's return address is its caller's caller's, so on resumption it
// skips every frame of the switch and lands straight in the code that asked for it (as Go's gogo
// does), with no ret to mispredict and no bookkeeping on the way. It stores in *save the context
// it is about to save. It serves greenlet::yield_transfer, whose caller wants no value back: the
// caller's return address is at ctx + 0x40, its stack pointer after the return ctx + 0x48.
//
// gr_fcontext_tail_switch(to, data, save) is the same for switch_to, whose caller wants the value:
// it pushes gr_direct_resume as the address jump_fcontext resumes at, which moves the resumer's
// transfer_t::data into rax and jumps to the real return address. So a direct-suspended greenlet
// resumes with the data of the jump that resumes it as its value: the protocol every resumer keeps
// (greenlet_access::jump, the trampolines). A padding word under it keeps the stack 16-byte
// aligned for an ontop trampoline, which runs with gr_direct_resume as its return address: the
// caller's return address is at ctx + 0x50, its stack pointer after the return ctx + 0x58.
//
// tools/gdb/gr.py reads both layouts (greenlet::resume_). No red-zone step: nothing runs below the
// caller's frame. To C++ both are ordinary functions: called rather than tail-called (at -O0),
// they return into their caller, which is as correct, only slower. What an injection or a dying
// child throws into such a greenlet is raised at the trampoline's return, which unwinds like a
// return into the caller (gr_direct_resume's CFI says so; its leading nop keeps the return
// address - 1 inside its FDE). Not under ASan/TSan, whose fiber annotations need the resumed side
// to run code.
#if GR_FCONTEXT_ASM && !GR_ASAN && !GR_TSAN
#define GR_DIRECT_RESUME 1
extern "C" void gr_fcontext_tail_jump(void* to, void* data, void** save);
extern "C" void* gr_fcontext_tail_switch(void* to, void* data, void** save);
asm(R"(
  .text
  .p2align 4
  .globl gr_fcontext_tail_jump
  .hidden gr_fcontext_tail_jump
  .type gr_fcontext_tail_jump, @function
gr_fcontext_tail_jump:
  .cfi_startproc
  leaq -0x40(%rsp), %rax
  movq %rax, (%rdx)
  jmp *jump_fcontext@GOTPCREL(%rip)
  .cfi_endproc
  .size gr_fcontext_tail_jump, .-gr_fcontext_tail_jump

  .p2align 4
  .type gr_direct_resume_fde, @function
gr_direct_resume_fde:
  .cfi_startproc
  .cfi_def_cfa_offset 16
  nop
  .globl gr_direct_resume
  .hidden gr_direct_resume
gr_direct_resume:
  movq %rdx, %rax
  movq 8(%rsp), %rcx
  leaq 16(%rsp), %rsp
  .cfi_def_cfa_offset 0
  .cfi_register %rip, %rcx
  jmp *%rcx
  .cfi_endproc
  .size gr_direct_resume_fde, .-gr_direct_resume_fde

  .p2align 4
  .globl gr_fcontext_tail_switch
  .hidden gr_fcontext_tail_switch
  .type gr_fcontext_tail_switch, @function
gr_fcontext_tail_switch:
  .cfi_startproc
  leaq gr_direct_resume(%rip), %rax
  subq $8, %rsp
  .cfi_adjust_cfa_offset 8
  pushq %rax
  .cfi_adjust_cfa_offset 8
  leaq -0x40(%rsp), %rax
  movq %rax, (%rdx)
  jmp *jump_fcontext@GOTPCREL(%rip)
  .cfi_endproc
  .size gr_fcontext_tail_switch, .-gr_fcontext_tail_switch
)");
#endif

}  // namespace
constinit thread_local detail::greenlet_thread_head* detail::tls_greenlet_thread __attribute__((tls_model("initial-exec"))) =
    nullptr;
namespace {
inline detail::greenlet_thread* tls_thread_state() noexcept {
  return static_cast<detail::greenlet_thread*>(detail::tls_greenlet_thread);
}

// Frees the thread's state at thread exit, unless greenlets of this thread still exist (a
// thread_local greenlet made before the thread's first greenlet use, so destroyed after this):
// then the state is left for them to use, and the last of them frees it.
struct thread_owner {
  detail::greenlet_thread* state = nullptr;
  ~thread_owner() {
    if (!state) return;
    if (state->live == 0) {
      delete state;
      detail::tls_greenlet_thread = nullptr;
    } else {
      state->orphaned = true;
    }
  }
};

bool query_running(detail::running_stack& out) noexcept;

// note_greenlet_exit: std::terminate with gr::greenlet_exit in flight: it escaped a destructor
// or a noexcept function, because the greenlet was killed (destroyed, reset, kill()) while
// suspended in a destructor that switched away during an unwinding.
void note_greenlet_exit() noexcept {
  if (!detail::terminating_with<greenlet_exit>() || !detail::tls_greenlet_thread) return;
  try {
    const std::string msg = fmt::format(
        "gr: gr::greenlet_exit escaped a destructor or a noexcept function in {}: it was killed (destroyed, "
        "reset or kill()) while suspended there, and the unwinding raises at that switch; a destructor that "
        "switches away must catch gr::greenlet_exit around the switch\n",
        greenlet::current()->describe());
    std::fputs(msg.c_str(), stderr);
  } catch (...) {
  }
}

[[gnu::cold, gnu::noinline]] detail::greenlet_thread& init_thread() {
  static const bool noted = (detail::add_terminate_note(&note_greenlet_exit), true);  // once per process
  (void)noted;
  static thread_local thread_owner owner;
  owner.state = new detail::greenlet_thread();
  detail::tls_greenlet_thread = owner.state;
  detail::install_overflow_handler(&query_running);
  return *owner.state;
}

inline detail::greenlet_thread& this_thread() {
  if (detail::greenlet_thread* ts = tls_thread_state()) [[likely]]
    return *ts;
  return init_thread();
}

}  // namespace

namespace {
constexpr bool in_first_line(std::size_t offset, std::size_t size) { return offset + size <= 64; }
}  // namespace

struct greenlet_access {
  // The switch path's fields end within the greenlet's first cache line (see greenlet.hpp).
  // offsetof on a class with a vtable is only conditionally supported; GCC and Clang give the
  // member's real offset, which is what matters here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
  static_assert(in_first_line(offsetof(greenlet, ctx_), sizeof(greenlet::ctx_)));
  static_assert(in_first_line(offsetof(greenlet, thread_), sizeof(greenlet::thread_)));
  static_assert(in_first_line(offsetof(greenlet, pass_), sizeof(greenlet::pass_)));
  static_assert(in_first_line(offsetof(greenlet, eh_), sizeof(greenlet::eh_)));
  static_assert(in_first_line(offsetof(greenlet, state_), sizeof(greenlet::state_)));
  static_assert(in_first_line(offsetof(greenlet, resume_), sizeof(greenlet::resume_)));
  static_assert(in_first_line(offsetof(greenlet, inject_pending_), sizeof(greenlet::inject_pending_)));
  static_assert(in_first_line(offsetof(greenlet, checks_canary_), sizeof(greenlet::checks_canary_)));
  static_assert(in_first_line(offsetof(greenlet, exc_), sizeof(greenlet::exc_)));
#pragma GCC diagnostic pop

  // set_injection / take_injection: the only writers of inject_; they keep inject_pending_ equal
  // to whether it holds a function.
  static void set_injection(greenlet* g, greenlet::inject_function fn) noexcept {
    g->inject_ = std::move(fn);
    g->inject_pending_ = static_cast<bool>(g->inject_);
  }
  static greenlet::inject_function take_injection(greenlet* g) noexcept {
    g->inject_pending_ = false;
    return std::exchange(g->inject_, nullptr);
  }
  // set_stack: the only writer of stack_ as a whole; keeps checks_canary_ (a trimmed copy keeps
  // its origin).
  static void set_stack(greenlet* g, const stack& s) noexcept {
    g->stack_ = s;
    g->checks_canary_ = s.has_canary();
  }

  static bool running(detail::running_stack& out) noexcept {
    detail::greenlet_thread* ts = tls_thread_state();
    if (!ts || !ts->current) return false;
    const greenlet* g = ts->current;
    out.stk = &g->stack_;
    out.owner = g;
    out.describe = [](detail::running_stack& rs) noexcept {
      static_cast<const greenlet*>(rs.owner)->describe_running(rs);
    };
    return true;
  }
  // broken_canary: leave()'s diagnosis, out of line (leave is inlined into every switch).
  [[noreturn, gnu::cold, gnu::noinline]] static void broken_canary(const greenlet* g) noexcept {
    detail::running_stack rs;
    rs.stk = &g->stack_;
    g->describe_running(rs);
    detail::canary_failure(rs);
  }

  // leave: what every switch does on `from`'s side before the jump: checks its stack's canary,
  // hands the C++ exception globals over to `to`, and makes `to` the thread's current greenlet.
  [[gnu::always_inline]] static void leave(greenlet* from, greenlet* to) {
    detail::greenlet_thread* ts = from->thread_;
    // A guarded stack (the usual kind) has no canary: the flag spares reading stack_.
    if (from->checks_canary_ && !detail::canary_word_intact(from->stack_)) [[unlikely]]
      broken_canary(from);
    // Whole 16-byte copies (two vector moves each way): the Itanium ABI's __cxa_eh_globals on
    // LP64 is a pointer and an unsigned int, padded to 16 bytes, like eh_state.
    detail::eh_state* eh = ts->eh;
    std::memcpy(&from->eh_, eh, sizeof(detail::eh_state));
    std::memcpy(eh, &to->eh_, sizeof(detail::eh_state));
    ts->current = to;
  }

  // leave_direct: leave() for the direct paths of yield_transfer and switch_to, which suspend
  // `from` to resume as `how` says. Returns the data for the jump: the value if `to` resumes
  // directly too, else `from` (see jump()).
  [[gnu::always_inline]] static void* leave_direct(greenlet* from, greenlet* to, void* arg, greenlet::resume how) {
    leave(from, to);
    from->pass_ = arg;
    void* data = to->resume_ != greenlet::resume::in_switch ? arg : static_cast<void*>(from);
    from->resume_ = how;
    return data;
  }

  // jump: leaves `from` (the running greenlet) for `to`, starting `to` if unstarted and running
  // its injection first if one is pending. Returns when something switches back to `from`.
  static ctx::transfer_t jump(greenlet* from, greenlet* to, bool from_dying) {
    leave(from, to);
    from->resume_ = greenlet::resume::in_switch;
    if (to->state_ == greenlet::state::unstarted) [[unlikely]] {
      // The first frames start the stack's colour below its top (see gr::stack::colour).
      const std::size_t colour = to->stack_.colour_offset();
      to->ctx_ = ctx::make_fcontext(static_cast<char*>(to->stack_.top()) - colour, to->stack_.size - colour, &entry);
      to->state_ = greenlet::state::active;
      detail::san_init(to->san_, to->stack_.base, to->stack_.size, false);
      detail::san_start_switch(from->san_, to->san_, from_dying);
      return fcontext_jump(to->ctx_, from, &from->ctx_);
    }
    detail::san_start_switch(from->san_, to->san_, from_dying);
    if (to->inject_pending_) [[unlikely]] {
      GR_DEBUG_ASSERT(to->inject_, "inject_pending_ is set on a greenlet with no injection");
      return fcontext_ontop(to->ctx_, from, &from->ctx_, &inject_trampoline);
    }
#if GR_DIRECT_RESUME
    // A greenlet that resumes straight into its caller runs no resumed(): it takes the value as
    // the jump's data, and an exception its dying child leaves is thrown from its stack's top
    // instead (see rethrow_trampoline).
    if (to->resume_ != greenlet::resume::in_switch) {
      if (from_dying && from->exc_) [[unlikely]]
        return fcontext_ontop(to->ctx_, from, &from->ctx_, &rethrow_trampoline);
      return fcontext_jump(to->ctx_, from->pass_, &from->ctx_);
    }
#endif
    return fcontext_jump(to->ctx_, from, &from->ctx_);
  }

  // resumed: the bookkeeping on `self`'s side once a switch lands back in it.
  // After an injection (t.fctx null) t.data is the value itself, and what to raise is in
  // pending_throw_: the switcher may be gone by then (see inject_trampoline).
  static void* resumed(greenlet* self, ctx::transfer_t t) {
    if (!t.fctx) [[unlikely]] {
      if (self->pending_throw_) std::rethrow_exception(std::exchange(self->pending_throw_, nullptr));
      return t.data;
    }
    auto* prev = static_cast<greenlet*>(t.data);
#if !GR_FCONTEXT_ASM
    prev->ctx_ = t.fctx;  // the asm entry stored it already, before the jump
#endif
    detail::san_finish_switch(self->san_, &prev->san_);
    if (prev->exc_) [[unlikely]]
      std::rethrow_exception(std::exchange(prev->exc_, nullptr));
    return prev->pass_;
  }

  // entry: the first frame of every greenlet's stack.
  [[noreturn]] static void entry(ctx::transfer_t t) {
    // make_fcontext's trampoline leaves a code address as this frame's return address and saved
    // frame pointer. Zero both so unwinders and profilers stop here (this frame never returns).
    auto** fp = static_cast<void**>(__builtin_frame_address(0));
    fp[0] = nullptr;
    fp[1] = nullptr;
    auto* prev = static_cast<greenlet*>(t.data);
    greenlet* self = prev->thread_->current;
    prev->ctx_ = t.fctx;
    detail::san_finish_switch(self->san_, &prev->san_);
    self->body(prev);
  }

  // inject_trampoline: runs on the target's stack on top of its suspended switch (ontop_fcontext).
  // It takes the switch's value and a dying switcher's exception before the injected code runs:
  // that code may switch away, and the switcher may be destroyed before the target comes back.
  // On the ordinary path what the injected code throws (or else the dying switcher's exception)
  // waits in pending_throw_ and resumed() raises it in the target's switch: no unwinder may walk
  // from here into the suspended frame, whose stack pointer the push + jmp entry moved past the
  // red zone (see fcontext_jump).
  // A greenlet suspended by yield_transfer or switch_to's direct path has a resume thunk, then
  // its caller's frame, right below this one, entered as by a return: there the exception goes
  // straight up, as if thrown by the call it made, and a normal return hands the value over as
  // data (the thunks' protocol).
  static ctx::transfer_t inject_trampoline(ctx::transfer_t t) {
    auto* prev = static_cast<greenlet*>(t.data);
    greenlet* self = prev->thread_->current;
    prev->ctx_ = t.fctx;
    detail::san_finish_switch(self->san_, &prev->san_);
    void* value = prev->pass_;
    std::exception_ptr died_by = std::exchange(prev->exc_, nullptr);  // set only if prev is dying
    greenlet::inject_function fn = take_injection(self);
    if (self->resume_ != greenlet::resume::in_switch) {
      fn(value);
      if (died_by) [[unlikely]]  // as in rethrow_trampoline
        std::rethrow_exception(std::move(died_by));
      return {nullptr, value};
    }
    try {
      fn(value);
    } catch (...) {
      died_by = std::current_exception();  // this one wins: it was raised last
    }
    self->pending_throw_ = std::move(died_by);  // unused while started: see resumed()
    return {nullptr, value};
  }

  // rethrow_trampoline: a child died by an exception into a direct-suspended greenlet:
  // raised on its stack as if by the call that suspended it (the frames below are that caller's,
  // or a resume thunk and then the caller's).
  static ctx::transfer_t rethrow_trampoline(ctx::transfer_t t) {
    auto* prev = static_cast<greenlet*>(t.data);
    prev->ctx_ = t.fctx;
    std::rethrow_exception(std::exchange(prev->exc_, nullptr));
  }
};

namespace {
bool query_running(detail::running_stack& out) noexcept { return greenlet_access::running(out); }
}  // namespace

// ---- construction -------------------------------------------------------------------------------

greenlet::greenlet(root_tag, detail::greenlet_thread* t) noexcept
    : thread_(t), state_(state::active), root_(true) {
  detail::san_init(san_, nullptr, 0, true);
}

inline void greenlet::attach(greenlet* parent) {
  detail::greenlet_thread& ts = this_thread();
  if (parent && parent->thread_ != &ts) [[unlikely]]
    throw error(fmt::format("gr::greenlet: the parent {} belongs to another thread", parent->describe()));
  thread_ = &ts;
  join_parent(parent ? parent : &ts.root);
  ++ts.live;
}

greenlet::greenlet(greenlet* parent, stack s, bool owns_stack) {
  attach(parent);
  greenlet_access::set_stack(this, s);
  owns_stack_ = owns_stack;
}

greenlet::greenlet(greenlet* parent, const stack& s, std::size_t usable_size) {
  attach(parent);
  greenlet_access::set_stack(this, s);
  stack_.size = usable_size;
  stack_.colour = 0;       // the subclass's frame above usable_size has taken it
  stack_.valgrind_id = 0;  // the registration stays with `s`, released by its owner
}

namespace {
greenlet::function checked(greenlet::function fn) {
  if (!fn) throw error("gr::greenlet: the start function is empty");
  return fn;
}
}  // namespace

greenlet::greenlet(function fn, greenlet* parent, std::size_t stack_size)
    : greenlet(parent, stack{}, true) {
  fn_ = checked(std::move(fn));
  greenlet_access::set_stack(this, allocate_stack(stack_size));  // last: nothing after it can throw
}

// The greenlet owns the stack *descriptor* (release_stack() on it only forgets a user stack:
// valgrind deregistration and the live count), never the memory, which stays the caller's.
greenlet::greenlet(function fn, greenlet* parent, stack user_memory) : greenlet(parent, user_memory, true) {
  fn_ = checked(std::move(fn));
}

// disowned_mark: the thread_ of a greenlet that left its thread (disown_thread). Never null and
// never any thread's state, so every "is this my thread" check refuses it, and the destructor,
// finding it in its wrong-thread branch, does nothing. Never dereferenced.
inline detail::greenlet_thread* disowned_mark() noexcept {
  alignas(64) static constinit char mark = 0;
  return reinterpret_cast<detail::greenlet_thread*>(&mark);
}

// Inlined into the destructor (every task's end runs it); disown_thread() is the rare other caller.
[[gnu::always_inline]] inline void greenlet::leave_thread() noexcept {
  GR_DEBUG_ASSERT(parent_->root_ ? !prev_link_ : *prev_link_ == this,
                  "a greenlet is missing from its parent's child list");
  // Leave the family: the children (unstarted, suspended or dead) go to this greenlet's parent,
  // so every parent chain still ends at a root, and a pending kill() forgets this greenlet.
  if (first_child_) [[unlikely]]
    pass_children_to(parent_);
  leave_parent();
  for (detail::kill_frame* f = thread_->kills; f; f = f->outer) {
    if (f->home == this) f->home = parent_;
    if (f->victim == this) f->victim = nullptr;
  }
  detail::san_destroy(san_);
  if (owns_stack_) {
    owns_stack_ = false;
    release_stack(stack_);
  }
  detail::greenlet_thread* ts = thread_;
  if (--ts->live == 0 && ts->orphaned) [[unlikely]] {
    // The thread is ending and this was its last greenlet: the state thread_owner left goes too.
    delete ts;
    detail::tls_greenlet_thread = nullptr;
  }
}

greenlet::~greenlet() {
  if (root_) return;
  // Even an unstarted or dead greenlet may not be destroyed elsewhere: its thread's live count and
  // its parent's and children's links change here, and their own thread changes them unlocked.
  if (thread_ != tls_thread_state()) [[unlikely]] {
    if (thread_ == disowned_mark()) return;  // disown_thread: nothing of a thread's is left to change
    detail::fatal(fmt::format("{} was destroyed on another thread: destroy a greenlet on the thread that created it "
                              "(one that must outlive its thread calls disown_thread() there before the thread ends)",
                              describe()));
  }
  if (state_ == state::active) {
    if (thread_->current == this) detail::fatal(fmt::format("{} was destroyed while running", describe()));
    try {
      kill();  // refuses a greenlet in the running one's parent chain
    } catch (const std::exception& e) {
      detail::fatal(fmt::format("destroying {}: {}", describe(), e.what()));
    } catch (...) {
      detail::fatal(fmt::format("destroying {}: an exception escaped while it unwound", describe()));
    }
  }
  GR_DEBUG_ASSERT(inject_pending_ == static_cast<bool>(inject_) && checks_canary_ == stack_.has_canary(),
                  "a greenlet's switch flags disagree with its injection or its stack");
  leave_thread();
}

void greenlet::disown_thread() noexcept {
  GR_ASSERT(!root_ && state_ != state::active && thread_ && thread_ == tls_thread_state(),
            "disown_thread: a root, an active greenlet, or another thread's");
  leave_thread();
  thread_ = disowned_mark();  // the state may be freed by now
}

// ---- queries ------------------------------------------------------------------------------------

void greenlet::describe_running(detail::running_stack& out) const noexcept {
  out.label = name_.c_str();
  out.owner = this;
}

greenlet* greenlet::root() { return &this_thread().root; }
greenlet* greenlet::current_slow() { return this_thread().current; }
std::size_t greenlet::live_count() noexcept { return tls_thread_state() ? tls_thread_state()->live : 0; }

std::string greenlet::describe() const {
  if (!name_.empty()) return fmt::format("greenlet '{}'", name_);
  if (root_) return fmt::format("root greenlet {}", static_cast<const void*>(this));
  return fmt::format("greenlet {}", static_cast<const void*>(this));
}



inline greenlet* greenlet::nearest_live() noexcept {
  greenlet* g = this;
  while (g->state_ == state::dead) g = g->parent_;
  return g;
}

bool greenlet::in_parent_chain_of(const greenlet* g) const noexcept {
  for (const greenlet* a = g->parent_; a; a = a->parent_)
    if (a == this) return true;
  return false;
}

// pass_children_to: every child of this greenlet becomes a child of `p`; O(children).
void greenlet::pass_children_to(greenlet* p) noexcept {
  if (!first_child_) return;
  if (p->root_) {
    for (greenlet* c = std::exchange(first_child_, nullptr); c; c = c->next_sibling_) {
      c->parent_ = p;
      c->prev_link_ = nullptr;
    }
    return;
  }
  greenlet* last = first_child_;
  for (greenlet* c = first_child_; c; c = c->next_sibling_) {
    c->parent_ = p;
    last = c;
  }
  last->next_sibling_ = p->first_child_;  // splice the whole list in front of p's children
  if (p->first_child_) p->first_child_->prev_link_ = &last->next_sibling_;
  first_child_->prev_link_ = &p->first_child_;
  p->first_child_ = std::exchange(first_child_, nullptr);
}

void greenlet::set_parent(greenlet* p) {
  if (!p) throw error(fmt::format("gr::greenlet::set_parent: null parent for {}", describe()));
  if (root_) throw error(fmt::format("gr::greenlet::set_parent: {} is a root and has no parent", describe()));
  if (p->thread_ != thread_)
    throw error(fmt::format("gr::greenlet::set_parent: {} and its new parent {} belong to different threads",
                            describe(), p->describe()));
  for (greenlet* g = p; g; g = g->parent_)
    if (g == this)
      throw error(fmt::format("gr::greenlet::set_parent: making {} the parent of {} would make a cycle",
                              p->describe(), describe()));
  set_parent_unchecked(p);
}

// ---- switching -----------------------------------------------------------------------------------

void* greenlet::run(void* arg) { return fn_(arg); }

void* greenlet::transfer(greenlet* from, greenlet* to, void* arg) {
  GR_DEBUG_ASSERT(from == from->thread_->current, "transfer from a greenlet that is not running");
  GR_DEBUG_ASSERT(to->thread_ == from->thread_ && to != from && !to->dead(), "bad transfer target");
  from->pass_ = arg;
  ctx::transfer_t t = greenlet_access::jump(from, to, false);
  return greenlet_access::resumed(from, t);
}

void greenlet::yield_transfer(greenlet* from, greenlet* to) {
  GR_DEBUG_ASSERT(from == from->thread_->current, "yield_transfer from a greenlet that is not running");
  GR_DEBUG_ASSERT(to->thread_ == from->thread_ && to != from && !to->dead(), "bad yield_transfer target");
#if GR_DIRECT_RESUME
  if (to->state_ == state::active && !to->inject_pending_) [[likely]] {
    void* data = greenlet_access::leave_direct(from, to, nullptr, resume::to_caller);
    gr_fcontext_tail_jump(to->ctx_, data, &from->ctx_);  // a tail call: see gr_fcontext_tail_jump
    return;
  }
#endif
  transfer(from, to, nullptr);
}

namespace {
[[noreturn, gnu::cold, gnu::noinline]] void throw_foreign(const greenlet& g, const char* op) {
  throw error(fmt::format("gr::greenlet::{}: {} belongs to another thread", op, g.describe()));
}
}  // namespace

// Kept free of calls but the last (a greenlet of this thread means its state exists, so a thread
// that has none yet is another thread): no stack frame, and the switch is a tail call.
void* greenlet::switch_to(void* arg) {
  detail::greenlet_thread* ts = tls_thread_state();
  if (thread_ != ts) [[unlikely]]
    throw_foreign(*this, "switch_to");
  greenlet* to = this;
  while (to->state_ == state::dead) to = to->parent_;
  greenlet* from = ts->current;
  if (to == from) [[unlikely]]
    return arg;
#if GR_DIRECT_RESUME
  if (to->state_ == state::active && !to->inject_pending_) [[likely]] {
    void* data = greenlet_access::leave_direct(from, to, arg, resume::to_caller_with_value);
    return gr_fcontext_tail_switch(to->ctx_, data, &from->ctx_);  // a tail call: see gr_fcontext_tail_switch
  }
#endif
  return transfer(from, to, arg);
}

void greenlet::check_thread(const char* op) const {
  if (thread_ != tls_thread_state()) [[unlikely]]
    throw_foreign(*this, op);
}

void* greenlet::throw_in(std::exception_ptr e) {
  check_thread("throw_in");
  if (!e) throw error(fmt::format("gr::greenlet::throw_in: null exception for {}", describe()));
  greenlet* to = nearest_live();
  greenlet* from = thread_->current;
  if (to == from) std::rethrow_exception(e);
  if (to->state_ == state::unstarted)
    to->pending_throw_ = std::move(e);
  else
    greenlet_access::set_injection(to, [e = std::move(e)](void*) { std::rethrow_exception(e); });
  return transfer(from, to, nullptr);
}

void greenlet::inject(inject_function fn) {
  check_thread("inject");
  if (!fn) throw error(fmt::format("gr::greenlet::inject: an empty function for {}", describe()));
  if (state_ == state::dead) throw error(fmt::format("gr::greenlet::inject: {} is dead", describe()));
  if (thread_->current == this)
    throw error(fmt::format("gr::greenlet::inject: {} is running; inject into a suspended greenlet", describe()));
  greenlet_access::set_injection(this, std::move(fn));
}

namespace {
// end_kill: pops `f` from the thread's kills and gives the victim its old parent back. False if
// the victim was destroyed while the kill waited (then there is nothing left to restore).
bool end_kill(detail::greenlet_thread* ts, detail::kill_frame& f) noexcept {
  detail::kill_frame** p = &ts->kills;
  while (*p != &f) p = &(*p)->outer;
  *p = f.outer;
  if (!f.victim) return false;
  f.victim->set_parent_unchecked(f.home);
  return true;
}
}  // namespace

void greenlet::kill() { kill_for("kill"); }

void greenlet::kill_for(const char* op) {
  check_thread(op);
  if (root_) throw error(fmt::format("gr::greenlet::{}: {} cannot be killed", op, describe()));
  if (state_ != state::active) return;
  detail::greenlet_thread* ts = thread_;
  greenlet* cur = ts->current;
  if (cur == this)
    throw error(fmt::format("gr::greenlet::{}: {} is running and cannot kill, reset or destroy itself", op, describe()));
  // An ancestor has a child, so the walk up the running greenlet's chain is rarely needed.
  if (first_child_ && in_parent_chain_of(cur)) [[unlikely]]
    throw error(fmt::format("gr::greenlet::{}: {} is in the parent chain of the running {}, which would resume it "
                            "when it ends, and cannot be killed, reset or destroyed",
                            op, describe(), cur->describe()));
  // The unwinding ends by resuming the killer, not the old parent, which the frame keeps.
  detail::kill_frame f{this, parent_, ts->kills};
  ts->kills = &f;
  set_parent_unchecked(cur);
  greenlet_access::set_injection(this, [](void*) { throw greenlet_exit{}; });
  try {
    transfer(cur, this, nullptr);
  } catch (...) {
    end_kill(ts, f);
    throw;  // raised while it unwound: the killer sees it, as python-greenlet does
  }
  if (!end_kill(ts, f)) return;  // it switched away, and was destroyed before we got back
  if (state_ != state::dead)
    throw error(fmt::format("gr::greenlet::{}: {} caught gr::greenlet_exit and switched away instead of dying", op,
                            describe()));
}

void greenlet::reset() {
  kill_for("reset");
  if (state_ == state::unstarted) return;
  state_ = state::unstarted;
  ctx_ = nullptr;
  exc_ = nullptr;
  pending_throw_ = nullptr;
  greenlet_access::take_injection(this);
  eh_ = {};
  detail::san_reuse(stack_.base, stack_.size);
}

void greenlet::body(greenlet* from) {
  {
    try {
      // A dying child started us: its exception is ours. Tested before it is taken, so the
      // usual start builds and destroys no exception_ptr.
      if (from->exc_) [[unlikely]]
        std::rethrow_exception(std::exchange(from->exc_, nullptr));
      if (pending_throw_) [[unlikely]]
        std::rethrow_exception(std::exchange(pending_throw_, nullptr));
      void* arg = from->pass_;  // first: an injection may switch away, and `from` be destroyed meanwhile
      if (inject_pending_) greenlet_access::take_injection(this)(arg);
      pass_ = run(arg);
    } catch (const greenlet_exit&) {
      pass_ = nullptr;
    } catch (...) {
      exc_ = std::current_exception();
      // None for a foreign exception: pthread_exit's or pthread_cancel's forced unwinding, which
      // unwinds the thread's stack to its start, but this stack is the greenlet's and ends here.
      // Swallowed, glibc aborts with only "FATAL: exception not rethrown"; passed on, nothing
      // above this frame can take it. (A catch of abi::__forced_unwind binds a reference to no
      // object, which UBSan rejects.)
      if (!exc_) [[unlikely]]
        detail::fatal(fmt::format("{} called pthread_exit (or was cancelled by pthread_cancel): a thread cannot end "
                                  "from inside a greenlet, whose stack is not the thread's; return to the thread's "
                                  "root greenlet (end the task) and end the thread there",
                                  describe()));
      pass_ = nullptr;
    }
  }
  // Every local is gone: the frames below never run again.
  state_ = state::dead;
  greenlet_access::jump(this, parent_->nearest_live(), true);
  detail::fatal(fmt::format("{} was resumed after it died", describe()));
}

}  // namespace gr
