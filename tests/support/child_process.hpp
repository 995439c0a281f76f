// Test support: run a piece of code in a forked child and observe how it ends, for the tests of
// behaviour that kills the process (a guard-page hit, a broken canary, GR_ASSERT).
//
//   gr_test::child_result r = gr_test::run_in_child([] { crash(); });
//   CHECK(r.killed_by(SIGSEGV));
//   CHECK(r.err.find("gr: stack overflow") != std::string::npos);
//
// The child's stderr goes to a pipe the parent reads to the end; its stdout is left alone. The
// child leaves with _exit(0) if `body` returns (or _exit(3) if it throws), so it never runs the
// test framework's or the sanitizers' exit-time work. Call from a single-threaded test only.
#pragma once

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <string>
#include <utility>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

namespace gr_test {

struct child_result {
  int status = 0;   // as waitpid() reports it
  std::string err;  // everything the child wrote on stderr

  bool killed_by(int sig) const { return WIFSIGNALED(status) && WTERMSIG(status) == sig; }
  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
  // died: ended by a signal or a non-zero exit (a sanitizer reports and exits with 1).
  bool died() const { return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0); }
  bool says(const std::string& text) const { return err.find(text) != std::string::npos; }
};

// under_valgrind: true when the process runs under valgrind (which owns SIGSEGV, like ASan).
inline bool under_valgrind() {
#ifdef RUNNING_ON_VALGRIND
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

template <class Body>
child_result run_in_child(Body&& body) {
  child_result r;
  int fds[2];
  if (::pipe(fds) != 0) {
    r.status = -1;
    r.err = "pipe() failed";
    return r;
  }
  std::fflush(nullptr);  // or the child may write the parent's pending output a second time
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    r.status = -1;
    r.err = "fork() failed";
    return r;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[1]);
    try {
      std::forward<Body>(body)();
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      r.err.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  while (::waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

}  // namespace gr_test
