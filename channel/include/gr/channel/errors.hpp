// gr/channel/errors.hpp: what channel operations raise and return.
#pragma once

#include <gr/runtime/error.hpp>

namespace gr {

// channel_closed: send (or a select's send case) on a closed channel, or close() of a channel
// that is already closed. The message names the channel.
class channel_closed : public error {
public:
  using error::error;
};

// channel_status: the outcome of the non-throwing forms (try_*, *_until, *_for).
enum class channel_status {
  ok,           // the value went through
  closed,       // the channel is closed (for a receive: closed and drained)
  would_block,  // try_*: the operation would have to wait (no room / nothing to take)
  timeout,      // *_until / *_for: the deadline passed first
};

const char* to_string(channel_status s) noexcept;

}  // namespace gr
