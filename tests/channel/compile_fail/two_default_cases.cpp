// expect: gr::select: more than one default_case
#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>

int main() {
  gr::channel<int> c(1);
  gr::select(gr::recv_case(c), gr::default_case(), gr::default_case());
}
