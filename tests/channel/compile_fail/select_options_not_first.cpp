// expect: gr::select: select_options must be the first argument
// Put last, the options gave "'ops' is not a member of 'gr::select_options'".
#include <gr/channel/channel.hpp>
#include <gr/channel/select.hpp>

int main() {
  gr::channel<int> c(1);
  gr::select(gr::recv_case(c), gr::select_options{.name = "x"});
}
