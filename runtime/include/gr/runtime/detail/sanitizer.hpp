// gr/runtime/detail/sanitizer.hpp: tells AddressSanitizer, ThreadSanitizer and valgrind about
// stack switches and stacks. Internal: included by gr's own sources only (the greenlet layer's
// switch code, the stacks, the scheduler's exit).
//
// Protocol (per switch from A to B):
//   start_switch(A.san, B.san, A_is_dying)  just before jump_fcontext
//   finish_switch(B.san, &A.san)            first thing after B resumes (or starts)
// ASan learns the new stack bounds and keeps each fiber's fake stack; a dying fiber passes a null
// fake-stack slot so ASan frees it. TSan gets one fiber handle per greenlet.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GR_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GR_TSAN 1
#endif
#endif

#if GR_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/lsan_interface.h>
#endif
#if GR_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace gr::detail {

// fiber_sanitizer_state: what the sanitizers need to know about one greenlet. The same layout in
// every build, so a program compiled with other sanitizer flags than the library sees the same
// gr::greenlet (the fields are simply unused without sanitizers).
struct fiber_sanitizer_state {
  void* fake_stack = nullptr;   // ASan
  const void* bottom = nullptr;  // ASan
  std::size_t size = 0;          // ASan
  void* fiber = nullptr;         // TSan
  bool owns_fiber = false;       // TSan
};

// san_init: for a greenlet running on [bottom, bottom + size); root: the thread's own stack
// (bounds learnt at the first switch away from it).
inline void san_init(fiber_sanitizer_state& s, const void* bottom, std::size_t size, bool root) noexcept {
#if GR_ASAN
  s.fake_stack = nullptr;
  s.bottom = bottom;
  s.size = size;
#endif
#if GR_TSAN
  if (root) {
    s.fiber = __tsan_get_current_fiber();
    s.owns_fiber = false;
  } else if (!s.fiber) {
    s.fiber = __tsan_create_fiber(0);
    s.owns_fiber = true;
  }
#endif
  (void)s, (void)bottom, (void)size, (void)root;
}

inline void san_destroy(fiber_sanitizer_state& s) noexcept {
#if GR_TSAN
  if (s.owns_fiber && s.fiber) __tsan_destroy_fiber(s.fiber);
  s.fiber = nullptr;
  s.owns_fiber = false;
#endif
  (void)s;
}

inline void san_start_switch(fiber_sanitizer_state& from, const fiber_sanitizer_state& to, bool from_dying) noexcept {
#if GR_ASAN
  __sanitizer_start_switch_fiber(from_dying ? nullptr : &from.fake_stack, to.bottom, to.size);
#endif
#if GR_TSAN
  __tsan_switch_to_fiber(to.fiber, 0);
#endif
  (void)from, (void)to, (void)from_dying;
}

inline void san_finish_switch(fiber_sanitizer_state& self, fiber_sanitizer_state* from) noexcept {
#if GR_ASAN
  const void* from_bottom = nullptr;
  std::size_t from_size = 0;
  __sanitizer_finish_switch_fiber(self.fake_stack, &from_bottom, &from_size);
  if (from && !from->bottom) {  // the root's bounds, learnt the first time we leave it
    from->bottom = from_bottom;
    from->size = from_size;
  }
#endif
  (void)self, (void)from;
}

// san_keep_reachable: memory left as it is when the process exits (the stacks of tasks left
// unfinished): LeakSanitizer scans it, so what lives only there is not reported as leaked.
inline void san_keep_reachable(const void* base, std::size_t size) noexcept {
#if GR_ASAN
  __lsan_register_root_region(base, size);
#endif
  (void)base, (void)size;
}

// san_reuse: a pooled stack is handed out again; clear what an earlier greenlet left poisoned.
inline void san_reuse(void* base, std::size_t size) noexcept {
#if GR_ASAN
  __asan_unpoison_memory_region(base, size);
#endif
  (void)base, (void)size;
}

}  // namespace gr::detail
