// The doctest main shared by gr's test binaries: runs the tests, and after each pass through a
// test case (doctest runs a case once per subcase path) checks gr_test::leaks(). A leak fails the
// run with the name of the test, and the subcases of the pass, that left it.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "leak_check.hpp"

#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

std::vector<std::string> g_leaks;

struct leak_listener : doctest::IReporter {
  const doctest::TestCaseData* tc = nullptr;
  std::string path;       // the subcases entered in this pass, " / " between them
  std::string last_leak;  // the previous pass's report, so a leak that stays is named once
  explicit leak_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& t) override {
    tc = &t;
    path.clear();
    last_leak.clear();
  }
  // test_case_reenter: a pass ended and doctest runs the case again for its next subcase path. A
  // leak of this pass is caught here: a later pass could free it (or fail for another reason).
  void test_case_reenter(const doctest::TestCaseData&) override {
    check();
    path.clear();
  }
  void test_case_end(const doctest::CurrentTestCaseStats&) override { check(); }
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature& s) override {
    if (!path.empty()) path += " / ";
    path += s.m_name.c_str();
  }
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}

  void check() {
    std::string l = gr_test::leaks();
    if (!l.empty() && l != last_leak) {
      std::string where = tc ? tc->m_name : "?";
      if (!path.empty()) where += " (subcase " + path + ")";
      g_leaks.push_back(where + ": " + l);
    }
    last_leak = std::move(l);
  }
};

}  // namespace

DOCTEST_REGISTER_LISTENER("gr_leaks", 1, leak_listener);

// bad_test_names: names with a character that breaks ctest registration or doctest's filters
// (STYLE.md). ctest runs each test by name, so a test whose name is split or read as a pattern
// can pass without running: every run of the binary refuses them instead.
std::vector<std::string> bad_test_names() {
  std::vector<std::string> bad;
  for (const auto& t : doctest::detail::getRegisteredTests())
    if (std::string_view(t.m_name).find_first_of(",;*?[]") != std::string_view::npos) bad.emplace_back(t.m_name);
  return bad;
}

int main(int argc, char** argv) {
  if (const auto bad = bad_test_names(); !bad.empty()) {
    for (const auto& n : bad) std::fprintf(stderr, "test name with one of , ; * ? [ ]: \"%s\"\n", n.c_str());
    return 1;
  }
  doctest::Context context;
  context.applyCommandLine(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;
  for (const auto& l : g_leaks) std::fprintf(stderr, "LEAK after test case %s\n", l.c_str());
  if (!g_leaks.empty()) {
    std::fprintf(stderr, "%zu test case pass(es) left greenlets or stacks behind\n", g_leaks.size());
    return rc ? rc : 1;
  }
  return rc;
}
