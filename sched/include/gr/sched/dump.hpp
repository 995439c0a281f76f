// gr/sched/dump.hpp: what every task of this thread is doing, for people and their tools.
//
//   gr::dump(std::cerr);
//   gr: 3 task(s) on this thread's scheduler
//     task #0 'main': blocked, waits to join task 'worker' (#1), switches 1
//     task #1 'worker': blocked, waits to recv on channel 'jobs', spawned at main.cpp:12,
//       age 0.250 s, switches 3, stack 1.1 KiB now, 8 KiB peak of 256 KiB
//
// Each line: id, name, state, what it waits on (channel and operation, mutex, joined task,
// deadline), spawn site, age, switch count and stack use (current, and the peak measured by
// counting the stack's resident pages with mincore(), which touches nothing). Deadlock reports and
// the report of tasks still alive when a scheduler is destroyed print the same lines.
#pragma once

#include <iosfwd>

namespace gr {

// dump: writes this thread's scheduler's tasks to `os` (see above).
void dump(std::ostream& os);
// dump: the same to a file descriptor.
void dump(int fd);

// dump_on_signal: from now on, `sig` (SIGUSR1 by default) makes the next scheduler that does
// anything print the dump on stderr: at its next switch, block, wake or spawn, or yield of a task
// with nothing else to run, or at once if it sleeps until a timer (the signal handler itself only
// sets a flag).
// `kill -USR1 <pid>` then shows what a stuck-looking program's tasks wait on.
void dump_on_signal(int sig = 10 /* SIGUSR1 */);

}  // namespace gr
