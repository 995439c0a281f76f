// gr/greenlet/greenlet.hpp: stackful coroutines with python-greenlet's and cgreenlet's semantics.
//
//   gr::greenlet* main = gr::greenlet::current();            // the thread's root greenlet
//   gr::greenlet g([&](void* arg) -> void* {
//     std::puts(static_cast<const char*>(arg));               // "hello"
//     void* back = main->switch_to((void*)"from g");          // suspend g, resume main
//     return back;                                            // g dies; its parent resumes
//   });
//   void* r = g.switch_to((void*)"hello");                     // r == "from g"
//   r = g.switch_to((void*)"bye");                             // r == "bye" (what g returned)
//
// Model (python-greenlet):
//   - Each thread has one root greenlet (its own stack), made on first use. Every other greenlet
//     runs `fn` on a stack of its own and has a parent (by default the root).
//   - switch_to(arg) suspends the current greenlet and starts or resumes the target; the target's
//     pending switch_to returns `arg` (the first switch passes `arg` to `fn`). When `fn` returns r,
//     the greenlet is dead and its nearest live ancestor resumes with r. Switching to a dead
//     greenlet goes to its nearest live ancestor.
//   - An exception escaping `fn` kills the greenlet and is rethrown from the switch_to in the
//     ancestor that resumes. Each greenlet has its own in-flight exception state, so switching from
//     inside a catch block neither loses nor leaks the exception being handled.
//   - Destroying a started, unfinished greenlet raises gr::greenlet_exit inside it so every
//     destructor on its stack runs; control then comes back to the destroyer.
//   - Destroying a greenlet that is still the parent of others (unstarted, suspended or dead ones)
//     hands them to its own parent: a destroyed greenlet leaves the parent chain as if it had never
//     been in it, so a child that finishes later resumes the destroyed one's nearest live ancestor.
//     A parent is not kept alive by its children (python-greenlet's references); the chain never
//     dangles.
//
// Ownership and threads: a greenlet is owned by whoever constructed it; it may not be moved or
// copied. It belongs to the thread that created it: switching to it from another thread throws
// gr::error. Destroy it on that thread too, whatever its state: the per-thread greenlet count and
// the parent/child links are not synchronized (see ~greenlet).
#pragma once

#include <gr/runtime/detail/sanitizer.hpp>
#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <string>

namespace gr {

// greenlet_exit: raised inside a greenlet that is being destroyed, reset or killed, to unwind its
// stack. Deliberately not a std::exception, so `catch (const std::exception&)` lets it pass; a
// greenlet that catches it must rethrow or return. A greenlet_exit that ends a greenlet is not
// re-raised in anyone.
struct greenlet_exit {
  const char* what() const noexcept { return "gr::greenlet_exit"; }
};

class greenlet;

namespace detail {
struct greenlet_thread;
// greenlet_thread_head: the part of a thread's greenlet state that inline code reads (the rest
// is private to greenlet.cpp). tls_greenlet_thread is null until the thread first uses greenlets.
struct greenlet_thread_head {
  greenlet* current = nullptr;  // the running greenlet
};
extern constinit thread_local greenlet_thread_head* tls_greenlet_thread __attribute__((tls_model("initial-exec")));
struct eh_state {  // mirrors the C++ ABI's per-thread __cxa_eh_globals
  void* caught = nullptr;
  unsigned int uncaught = 0;
};
static_assert(sizeof(eh_state) == 2 * sizeof(void*), "greenlet.cpp copies eh_state as two words");
}  // namespace detail

class greenlet {
public:
  using function = std::function<void*(void*)>;
  using inject_function = std::function<void(void*)>;

  // greenlet: a greenlet that will run `fn` on its own stack of `stack_size` bytes (0: the default,
  // gr::default_stack_size), with `parent` (null: this thread's root). Its first frame starts
  // the stack's colour_offset() below the top (at most an eighth of it; see gr::stack::colour).
  // Nothing runs until the first switch_to. Throws gr::error if `parent` belongs to another
  // thread or `fn` is empty.
  explicit greenlet(function fn, greenlet* parent = nullptr, std::size_t stack_size = 0);
  // greenlet: the same on caller-supplied memory (see gr::user_stack): no allocation at all.
  // The greenlet takes over the stack value and passes it to gr::release_stack() when destroyed
  // (which only forgets a user stack); the memory itself stays the caller's and must outlive it.
  greenlet(function fn, greenlet* parent, stack user_memory);

  greenlet(const greenlet&) = delete;
  greenlet& operator=(const greenlet&) = delete;

  // ~greenlet: unwinds a suspended greenlet (see kill()), hands its children to its parent (each
  // child's parent() becomes this greenlet's parent()) and frees its stack. Misuse that cannot be
  // thrown from a destructor aborts with a message naming the greenlet: destroying the running
  // greenlet, a suspended greenlet in the running one's parent chain (see kill()), or any greenlet
  // from a thread other than its own (even an unstarted or dead one: its thread's count and links
  // are not synchronized; a greenlet that must outlive its thread calls disown_thread() there
  // first). Call kill() first to get a gr::error for the first two. The unwinding runs in this
  // destructor, after the members of a derived class are gone and after members declared later
  // in an enclosing object: a subclass whose run() uses its own members calls kill() in its own
  // destructor, and a struct that holds a greenlet with the state its function uses declares
  // the greenlet last.
  virtual ~greenlet();

  // switch_to: suspends the current greenlet and starts or resumes this one (or, if this one is
  // dead, its nearest live ancestor) with `arg`. Returns the value the next switch back to the
  // caller carries. Rethrows an exception that escaped a greenlet whose death resumed the caller.
  // Throws gr::error if this greenlet belongs to another thread. Switching to the current
  // greenlet returns `arg` at once.
  void* switch_to(void* arg = nullptr);

  // throw_in: raises `e` inside this greenlet where it is suspended and switches to it; returns
  // what switch_to would. An unstarted greenlet dies without running and `e` travels up its
  // parent chain; for a dead greenlet `e` is raised in its nearest live ancestor. Replaces an
  // injection not yet run (it uses the same mechanism), which then never runs.
  void* throw_in(std::exception_ptr e);

  // inject: `fn(arg)` runs once on this greenlet's stack just before it next starts or resumes,
  // with the `arg` of that switch. If it throws, the exception is raised at the resume point (for
  // an unstarted greenlet: it dies without running `fn`, as with throw_in). If the switch that
  // resumes it already carries an exception (a child that died by one), the injection's
  // exception is raised instead and the child's is dropped: the last one raised wins, as when a
  // destructor's exception replaces one in flight. Replaces an earlier injection not yet run.
  // Throws gr::error for a dead greenlet or the current one, and for an empty `fn`.
  void inject(inject_function fn);

  // kill: raises gr::greenlet_exit inside a started, unfinished greenlet and returns when it is
  // dead, its destructors run. While it unwinds its parent is the caller (so control comes back
  // here, not to its parent); afterwards the old parent is restored, never resumed. Does nothing
  // to an unstarted or dead greenlet. Throws gr::error for the current greenlet, a root, another
  // thread's greenlet, a greenlet in the current one's parent chain (the running greenlet would
  // resume it when it ends), or one that swallows greenlet_exit and switches away instead of
  // dying (python-greenlet lets that one live on; gr reports it, and the destructor aborts).
  void kill();

  // reset: kill(), then make the greenlet unstarted again on the same stack: the next switch calls
  // its function afresh. Same errors as kill(), naming reset.
  void reset();

  // root: this thread's root greenlet (made on first use). current: the running greenlet.
  static greenlet* root();
  static greenlet* current() {
    if (detail::greenlet_thread_head* t = detail::tls_greenlet_thread) [[likely]]
      return t->current;
    return current_slow();
  }

  // parent: where control goes when this greenlet finishes (null only for a root). Always a
  // greenlet that exists: when a parent is destroyed, its children pass to its own parent.
  greenlet* parent() const noexcept { return parent_; }
  // set_parent: throws gr::error for a null parent, a parent of another thread, a root's parent,
  // or a parent that would make a cycle.
  void set_parent(greenlet* p);

  bool started() const noexcept { return state_ != state::unstarted; }  // stays true after death
  bool dead() const noexcept { return state_ == state::dead; }
  bool active() const noexcept { return state_ == state::active; }        // started and not dead
  bool is_root() const noexcept { return root_; }

  // name: for messages, overflow reports and dumps. Empty by default (the address is used).
  const std::string& name() const noexcept { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  // describe: "greenlet 'name'" or "greenlet 0x...", as used in gr's messages.
  std::string describe() const;

  // stack_region: the memory this greenlet runs on (empty for a root).
  const stack& stack_region() const noexcept { return stack_; }
  // suspended_sp: the stack pointer a suspended greenlet was saved at (its saved fcontext, where
  // its registers sit); null if unstarted or dead; stale while it runs (check current() first).
  // For dumps and debuggers.
  const void* suspended_sp() const noexcept { return state_ == state::active ? ctx_ : nullptr; }
  // checks_canary: whether a switch away from this greenlet checks its stack's canary (an
  // unguarded or user stack), reading stack_region() beyond the switch's first cache line. For
  // the scheduler's prefetch.
  bool checks_canary() const noexcept { return checks_canary_; }

  // live_count: greenlets of this thread that exist, roots excluded (for leak checks).
  static std::size_t live_count() noexcept;

  // For the layers above, on their hot paths (the scheduler switches task to task with these):
  // transfer: the unchecked switch. Preconditions (checked in debug builds): `from` is the current
  // greenlet, `to` belongs to the same thread, is not dead and is not `from`.
  static void* transfer(greenlet* from, greenlet* to, void* arg);
  // yield_transfer: transfer(from, to, nullptr) for a caller that wants no value back and makes
  // this call its last act (a tail call, as the scheduler's yield and park do). `from` is then
  // suspended at its caller's return address: resuming it jumps straight back into the caller's
  // caller, with no return to mispredict and no bookkeeping on the way. Called without a tail call
  // (at -O0) it is as correct, only slower. Where direct resumption cannot be (ASan/TSan builds,
  // whose fiber annotations need code on the resumed side; `to` unstarted or with an injection
  // pending) it is transfer(). Same preconditions as transfer().
  static void yield_transfer(greenlet* from, greenlet* to);
  // disown_thread: for an object that embeds a greenlet and may outlive its thread (the
  // scheduler's task frames, kept by a task handle past the thread's end): the greenlet, neither
  // a root nor active (unstarted or dead), leaves its thread now: its children pass to its
  // parent, it frees its stack if it owns it and no longer counts as live. Its destructor then
  // does nothing more and may run on any thread; nothing else may be done with it. Called on its
  // own thread (aborts otherwise).
  void disown_thread() noexcept;
  // set_parent_unchecked: as set_parent, for callers that know the parent is valid.
  void set_parent_unchecked(greenlet* p) noexcept {
    leave_parent();
    join_parent(p);
  }

protected:
  // For subclasses that supply their own body through run() and manage their own stack memory
  // (the scheduler places its task objects near the top of the stack they run on).
  greenlet(greenlet* parent, stack s, bool owns_stack);
  // greenlet: runs on the lowest `usable_size` bytes of `s`, which it does not own: the subclass
  // object sits above them and its owner frees `s` (the scheduler's task frames). Takes `s` by
  // reference and trims the copy itself: a trimmed stack value built by the caller reaches the
  // constructor through memory in pieces, and reading it back whole stalls on store forwarding.
  greenlet(greenlet* parent, const stack& s, std::size_t usable_size);

  // run: the greenlet's body. The default calls the function given to the constructor.
  virtual void* run(void* arg);
  // describe_running: what a stack-overflow or broken-canary message says runs on this greenlet's
  // stack (out.stk is set already). The default: the greenlet's name, else its address. Called in
  // a signal handler: an override may only read memory (async-signal-safe), and what it points
  // `out` at must live as long as the greenlet.
  virtual void describe_running(detail::running_stack& out) const noexcept;

  // release_stack_ownership: the stack memory is no longer this greenlet's to free.
  stack release_stack_ownership() noexcept {
    owns_stack_ = false;
    return stack_;
  }

private:
  enum class state : unsigned char {
    unstarted,  // made or reset; ctx_ is null; no frames on the stack
    active,     // started: running (it is current) or suspended in a switch (ctx_ holds its registers)
    dead,       // fn returned or threw; no live frames; the stack is kept until destruction or reset
  };
  // How a suspended greenlet resumes (tools/gdb/gr.py reads it): inside its switch (resumed()
  // runs), or straight into the caller of yield_transfer / switch_to, taking its value as the
  // resuming jump's data (see gr_fcontext_tail_jump and gr_fcontext_tail_switch in greenlet.cpp).
  enum class resume : unsigned char { in_switch, to_caller, to_caller_with_value };

  struct root_tag {};
  greenlet(root_tag, detail::greenlet_thread* t) noexcept;

  friend struct detail::greenlet_thread;
  friend struct greenlet_access;

  void attach(greenlet* parent);  // the constructors' common part: thread, parent, live count
  void check_thread(const char* op) const;
  // kill_for: kill(), its messages naming `op` (kill or reset).
  void kill_for(const char* op);
  static greenlet* current_slow();
  greenlet* nearest_live() noexcept;
  bool in_parent_chain_of(const greenlet* g) const noexcept;

  // join_parent / leave_parent: make `p` the parent (this goes to the front of its child list) /
  // take this greenlet out of its parent's child list (parent_ is left as it was). A root keeps no
  // list: it outlives every greenlet of its thread, so its children never need handing on.
  void join_parent(greenlet* p) noexcept {
    parent_ = p;
    if (p->root_) {
      prev_link_ = nullptr;
      return;
    }
    next_sibling_ = p->first_child_;
    if (next_sibling_) next_sibling_->prev_link_ = &next_sibling_;
    prev_link_ = &p->first_child_;
    p->first_child_ = this;
  }
  void leave_parent() noexcept {
    if (!prev_link_) return;
    *prev_link_ = next_sibling_;
    if (next_sibling_) next_sibling_->prev_link_ = prev_link_;
  }
  void pass_children_to(greenlet* p) noexcept;
  // leave_thread: the destructor's end, and disown_thread(): leaves the family and the thread's
  // count (freeing the thread's state if the thread is ending and this was its last greenlet).
  void leave_thread() noexcept;
  [[noreturn]] void body(greenlet* from);

  // The switch path's fields come first: with the vtable pointer they fill the first cache line
  // of a 64-byte-aligned greenlet (a task's frame is, and so is a thread's root), and they are all
  // a switch reads or writes of either side, so a switch touches one line of each greenlet (a
  // switch away from an unguarded or user stack also reads stack_ for its canary). A start, a
  // death, an injection and the sanitizers' bookkeeping read further. greenlet.cpp holds the line
  // with static_asserts; tests/greenlet/layout_test.cpp switches greenlets whose other lines are
  // unreadable.
  void* ctx_ = nullptr;                   // saved fcontext while suspended
  detail::greenlet_thread* thread_ = nullptr;
  void* pass_ = nullptr;                  // the value this greenlet carries when it switches away
  detail::eh_state eh_;
  state state_ = state::unstarted;
  resume resume_ = resume::in_switch;
  bool inject_pending_ = false;           // inject_ holds a function (the switch tests this, not inject_)
  bool checks_canary_ = false;            // stack_.has_canary(), kept beside the other switch fields
  bool root_ = false;
  bool owns_stack_ = false;
  std::exception_ptr exc_;                // set when it died by an exception, until a resumer takes it
  // Line 1 and on: off the switch path.
  stack stack_;
  inject_function inject_;                // written only with inject_pending_ (see greenlet.cpp)
  greenlet* parent_ = nullptr;
  std::exception_ptr pending_throw_;      // throw_in on an unstarted greenlet, or what an injection threw
                                          // (until the resumed switch rethrows it)
  detail::fiber_sanitizer_state san_;
  function fn_;
  std::string name_;
  // The greenlets whose parent_ is this one, in an intrusive list (so destruction can hand them
  // on without a search): first_child_ heads it; next_sibling_ and prev_link_ (the pointer that
  // points at this greenlet: its parent's first_child_ or its previous sibling's next_sibling_)
  // link this greenlet into its parent's list; prev_link_ is null while the parent is a root.
  // Kept out of the switch path's cache line.
  greenlet* first_child_ = nullptr;
  greenlet* next_sibling_ = nullptr;
  greenlet** prev_link_ = nullptr;
};

// switch_to: cgreenlet's spelling of g.switch_to(arg).
inline void* switch_to(greenlet& g, void* arg = nullptr) { return g.switch_to(arg); }

}  // namespace gr
