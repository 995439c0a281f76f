#include "leak_check.hpp"

#include <gr/greenlet/greenlet.hpp>
#include <gr/sched/scheduler.hpp>

#include <string>

std::string gr_test::leaks() {
  std::string out;
  auto& s = gr::scheduler::current();
  if (s.task_count() != 0) out += std::to_string(s.task_count()) + " task(s) unfinished; ";
  if (s.snapshot().size() != 1) out += std::to_string(s.snapshot().size() - 1) + " task record(s) not released; ";
  if (gr::greenlet::live_count() != 0) out += std::to_string(gr::greenlet::live_count()) + " greenlet(s) alive; ";
  if (gr::greenlet::current() != gr::greenlet::root()) out += "the root greenlet is not running; ";
  const auto st = gr::stack_statistics();
  if (st.live != 0) out += std::to_string(st.live) + " stack(s) not released";
  return out;
}
