// expect: gr::select: a send_case of an rvalue is passed by name
// The case points at the temporary string, dead by the time select() runs: it sent a destroyed
// string and freed it twice.
#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>

#include <string>

int main() {
  gr::channel<std::string> c(1);
  auto sc = gr::send_case(c, std::string("gone"));
  gr::select(sc);
}
