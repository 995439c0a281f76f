// Uses an installed gr: one greenlet, switched into and back, then run to its end.
#include <gr/gr.hpp>

#include <cstdio>

int main() {
  gr::greenlet* root = gr::greenlet::current();
  int steps = 0;
  gr::greenlet g([&](void* arg) -> void* {
    ++steps;
    void* back = root->switch_to(arg);  // suspend g, resume main
    ++steps;
    return back;
  });
  int token = 42;
  if (g.switch_to(&token) != &token || steps != 1) return 1;  // into g and back
  if (g.switch_to(&steps) != &steps || steps != 2 || !g.dead()) return 1;  // g runs to its end
  std::puts("gr install ok");
  return 0;
}
