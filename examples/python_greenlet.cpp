// python_greenlet: python-greenlet's introductory examples, written with gr.
//
// Each greenlet runs a function on its own stack. switch_to() jumps into a greenlet (starting it,
// or resuming it where it last switched away), and a greenlet whose function returns is dead:
// control goes to its parent, by default the thread's root greenlet (here: main).
#include <gr/greenlet/greenlet.hpp>

#include <cstdio>

// test1 and test2 of python-greenlet's first examples: each prints, switches to the other, prints
// again. run_pair() makes gr1 and gr2 on them and starts gr1; `gr1_under_gr2` makes gr2 gr1's
// parent first.
void run_pair(bool gr1_under_gr2) {
  gr::greenlet* gr1 = nullptr;
  gr::greenlet* gr2 = nullptr;
  gr::greenlet test1([&](void*) -> void* {
    std::puts("12");
    gr2->switch_to();
    std::puts("34");
    return nullptr;
  });
  gr::greenlet test2([&](void*) -> void* {
    std::puts("56");
    gr1->switch_to();
    std::puts("78");
    return nullptr;
  });
  gr1 = &test1;
  gr2 = &test2;
  if (gr1_under_gr2) gr1->set_parent(gr2);
  gr1->switch_to();
}

// 1. Switching. When test1 returns, gr1 is dead and its parent (main) resumes and prints "end", so
// 78 is never printed: gr2 stays suspended in its switch until it is destroyed at the end of
// run_pair, which unwinds its stack without running the rest.
void switching() {
  std::puts("-- 1. switching between two greenlets (78 is never printed)");
  run_pair(false);
  std::puts("end");
}

// 2. Parents. The same two functions, but gr1's parent is gr2: when test1 returns, gr2 resumes
// where it switched away and prints 78; when test2 returns, its parent (main) resumes.
void parents() {
  std::puts("-- 2. gr1's parent is gr2, so test2 finishes too");
  run_pair(true);
}

// 3. Passing values. The first switch into a greenlet passes its argument to the function; later
// switches make the target's pending switch_to() return the argument. Values travel as void*:
// whatever they point to must stay alive until read (a suspended greenlet's locals do).
void passing_values() {
  std::puts("-- 3. passing values through switch");
  gr::greenlet* gr1 = nullptr;
  gr::greenlet* gr2 = nullptr;
  gr::greenlet test1([&](void* arg) -> void* {  // test1(x)
    int x = *static_cast<int*>(arg);
    std::printf("%d\n", x);                    // 12
    int sum = x + 44;
    void* z = gr2->switch_to(&sum);             // z = gr2.switch(x + 44)
    std::printf("%d\n", *static_cast<int*>(z));  // 34
    return nullptr;
  });
  gr::greenlet test2([&](void* arg) -> void* {  // test2(u)
    int u = *static_cast<int*>(arg);
    std::printf("%d\n", u);                    // 56
    int back = u - 22;
    gr1->switch_to(&back);                      // gr1.switch(u - 22)
    return nullptr;
  });
  gr1 = &test1;
  gr2 = &test2;
  int twelve = 12;
  gr1->switch_to(&twelve);                      // gr1.switch(12)
}

int main() {
  switching();
  parents();
  passing_values();
}
