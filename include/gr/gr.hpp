// <gr/gr.hpp>: every public header of gr.
#pragma once

#include <gr/runtime/error.hpp>
#include <gr/runtime/stack.hpp>
#include <gr/greenlet/greenlet.hpp>
