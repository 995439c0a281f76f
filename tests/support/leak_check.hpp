// Test support: every test case must end with no greenlet left alive and every stack given back.
// Each test binary defines gr_test::leaks() for its layer; the shared main (main.cpp) calls it
// after every test case and fails the run, naming the test, if anything is left.
#pragma once

#include <string>

namespace gr_test {
// leaks: empty when nothing is left over; otherwise a description of what is.
std::string leaks();
}  // namespace gr_test
