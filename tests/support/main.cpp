// The doctest main shared by gr's test binaries: runs the tests, and after each test case checks
// gr_test::leaks(). A leak fails the run with the name of the test that left it.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "leak_check.hpp"

#include <cstdio>
#include <string>
#include <vector>

namespace {

std::vector<std::string> g_leaks;

struct leak_listener : doctest::IReporter {
  const doctest::TestCaseData* tc = nullptr;
  explicit leak_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& t) override { tc = &t; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {
    std::string l = gr_test::leaks();
    if (!l.empty()) g_leaks.push_back(std::string(tc ? tc->m_name : "?") + ": " + l);
  }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("gr_leaks", 1, leak_listener);

int main(int argc, char** argv) {
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;
  for (const auto& l : g_leaks) std::fprintf(stderr, "LEAK after test case %s\n", l.c_str());
  if (!g_leaks.empty()) {
    std::fprintf(stderr, "%zu test case(s) left greenlets or stacks behind\n", g_leaks.size());
    return rc ? rc : 1;
  }
  return rc;
}
