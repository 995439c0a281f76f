#include <doctest/doctest.h>

#include <gr/gr.hpp>

#include <string>

TEST_SUITE("sched.smoke") {
  TEST_CASE("tasks interleave on yield and join returns") {
    std::string log;
    auto a = gr::spawn([&] { for (int i = 0; i < 3; ++i) { log += 'a'; gr::yield(); } }, {.name = "a"});
    auto b = gr::spawn([&] { for (int i = 0; i < 3; ++i) { log += 'b'; gr::yield(); } }, {.name = "b"});
    a.join();
    b.join();
    CHECK(log == "ababab");
  }
  TEST_CASE("deadlock names the blocked task") {
    gr::mutex m{"m1"};
    m.lock();
    auto t = gr::spawn([&] { m.lock(); m.unlock(); }, {.name = "locker"});
    try {
      t.join();
      FAIL("no deadlock reported");
    } catch (const gr::deadlock_error& e) {
      std::string w = e.what();
      CHECK(w.find("locker") != std::string::npos);
      CHECK(w.find("mutex 'm1'") != std::string::npos);
      MESSAGE(w);
    }
    t.cancel();
    m.unlock();
    t.join();
  }
  TEST_CASE("sleep under a virtual clock") {
    gr::virtual_clock vc;
    gr::scheduler::current().set_clock(vc);
    std::string log;
    auto a = gr::spawn([&] { gr::sleep_for(std::chrono::seconds(2)); log += "2"; });
    auto b = gr::spawn([&] { gr::sleep_for(std::chrono::seconds(1)); log += "1"; });
    gr::scheduler::current().run();
    CHECK(log == "12");
    CHECK(vc.now() == gr::time_point{} + std::chrono::seconds(2));
    a.join(); b.join();
    gr::scheduler::current().reset_clock();
  }
  TEST_CASE("an exception in a task is rethrown by join") {
    auto t = gr::spawn([] { throw std::runtime_error("boom"); });
    CHECK_THROWS_WITH_AS(t.join(), "boom", std::runtime_error);
  }
}
