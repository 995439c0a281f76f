// <gr/gr.hpp>: every public header of gr.
#pragma once

#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>
#include <gr/greenlet/greenlet.hpp>
#include <gr/sched/clock.hpp>
#include <gr/sched/condition_variable.hpp>
#include <gr/sched/errors.hpp>
#include <gr/sched/mutex.hpp>
#include <gr/sched/ready_policy.hpp>
#include <gr/sched/scheduler.hpp>
#include <gr/sched/semaphore.hpp>
#include <gr/sched/task.hpp>
#include <gr/sched/this_task.hpp>
#include <gr/sched/wait.hpp>
#include <gr/sched/wait_group.hpp>
#include <gr/channel/channel.hpp>
#include <gr/channel/errors.hpp>
#include <gr/channel/select.hpp>
#include <gr/sched/dump.hpp>
#include <gr/sched/trace.hpp>
