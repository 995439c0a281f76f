// seed_greenlet: the example cgreenlet started from, written with gr.
//
// main switches into greenlet 1, which prints and switches back; main switches in again, and
// greenlet 1 returns. A greenlet that returns is dead, and control goes to its parent: here the
// thread's root greenlet, which is main.
//
// Output:
//   entering greenlet 1
//   in func1 (greenlet 1)
//   re-entering greenlet 1
//   exiting func1 (greenlet 1)
//   exiting program
#include <gr/greenlet/greenlet.hpp>

#include <cstdio>

// func1: the body of greenlet 1. It runs on the greenlet's own stack.
void* func1(void*) {
  std::puts("in func1 (greenlet 1)");
  gr::greenlet::current()->parent()->switch_to();  // suspend here; main carries on
  std::puts("exiting func1 (greenlet 1)");
  return nullptr;  // greenlet 1 dies; its parent (main) resumes
}

int main() {
  gr::greenlet gr1(func1);  // no parent given: the thread's root greenlet, i.e. main

  std::puts("entering greenlet 1");
  gr1.switch_to();  // starts func1; returns when greenlet 1 switches back
  std::puts("re-entering greenlet 1");
  gr1.switch_to();  // resumes func1 where it switched away; returns when it is done
  std::puts("exiting program");
}
