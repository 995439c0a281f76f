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
