// Which sanitizer a test binary is built with, for tests whose outcome the sanitizer itself
// changes: GR_TEST_ASAN (ASan owns SIGSEGV, and LeakSanitizer checks at exit) and GR_TEST_TSAN
// (TSan defers signal handlers and intercepts pthread_exit).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GR_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GR_TEST_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define GR_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GR_TEST_TSAN 1
#endif
#endif
