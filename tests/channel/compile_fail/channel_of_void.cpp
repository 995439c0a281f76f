// expect: gr::channel<void>: a channel carries values
#include <gr/channel/channel.hpp>

int main() { gr::channel<void> c; }
