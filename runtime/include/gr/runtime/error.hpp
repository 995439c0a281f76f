// gr/runtime/error.hpp: the exceptions gr raises for misuse, and GR_ASSERT for broken invariants.
//
// Expected outcomes (closed, timeout, empty, full) are return values elsewhere in gr; this header
// holds what is *not* expected:
//   - gr::error and its subclasses: misuse by the caller (a bad parent, a switch to another
//     thread's greenlet, sending on a closed channel...). The message names the problem and the
//     object involved. Catch gr::error to catch every misuse gr reports.
//   - GR_ASSERT(cond, msg): an internal invariant is broken; prints file:line and aborts. It is
//     on in every build type; GR_DEBUG_ASSERT is on only without NDEBUG, for hot paths.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace gr {

// error: base of every exception gr throws for misuse. Thread-safe to copy, like std::logic_error.
class error : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

namespace detail {
// assert_fail: prints "gr: <file>:<line>: assertion `<expr>` failed: <msg>" on stderr and aborts.
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept;
// fatal: prints "gr: <msg>" on stderr and aborts. For errors that cannot be thrown (destructors,
// the final switch of a greenlet).
[[noreturn]] void fatal(const std::string& msg) noexcept;
// set_abort_hook: `fn` runs once, after the message and before the abort, when fatal() or a
// failed assertion ends the process: a layer above saves what it can then (the scheduler writes
// a Chrome trace that is being recorded). One per process; returns the one it replaces.
using abort_hook = void (*)() noexcept;
abort_hook set_abort_hook(abort_hook fn) noexcept;

// add_terminate_note: `note` runs when std::terminate is called, before the terminate handler
// that was installed when the first note came (C++'s, which names only the exception's type): a
// layer says what it knows (the greenlet or task an exception of its escaped from, a trace it
// records). gr's one terminate handler is installed with the first note; notes run in the order
// added, each once. At most four (one per layer); more are ignored.
void add_terminate_note(abort_hook note) noexcept;

// terminating_with: in a terminate note, whether the exception in flight is an E.
template <class E>
bool terminating_with() noexcept {
  try {
    if (std::exception_ptr e = std::current_exception()) std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
  }
  return false;
}
}  // namespace detail

}  // namespace gr

#define GR_ASSERT(cond, msg)                                                     \
  do {                                                                           \
    if (!(cond)) [[unlikely]]                                                    \
      ::gr::detail::assert_fail(#cond, __FILE__, __LINE__, msg);                 \
  } while (false)

#ifdef NDEBUG
#define GR_DEBUG_ASSERT(cond, msg) \
  do {                             \
  } while (false)
#else
#define GR_DEBUG_ASSERT(cond, msg) GR_ASSERT(cond, msg)
#endif
