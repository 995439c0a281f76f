// game_loop: a fixed-step game loop whose entities are written as straight-line tasks.
//
// The loop owns time: a gr::manual_clock moves by one fixed step per frame, and each frame calls
// scheduler::run_once(), which runs every task that is ready at most once. So an entity's
// behaviour reads like a script, with no state machine:
//
//   walk for 2 seconds      (move a little each frame: one gr::yield() = wait for the next frame)
//   aim for 3 frames
//   fire, repeat
//
// and gr::sleep_for() counts frame time. A task spawned or woken during a frame runs in the next
// one, so the log below is the same on every run and every machine.
#include <gr/gr.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

constexpr gr::duration frame_step = 100ms;  // 10 frames per simulated second
constexpr int max_frames = 400;

gr::manual_clock frame_time;
int frame = 0;

void log(const char* who, const std::string& what) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(frame_time.now() - gr::time_point{}).count();
  std::printf("frame %3d  t=%3lld.%llds  %-7s %s\n", frame, static_cast<long long>(ms / 1000),
              static_cast<long long>(ms % 1000 / 100), who, what.c_str());
}

// wait_frames: run_once() runs a task at most once per frame, so each yield is one frame.
void wait_frames(int n) {
  for (int i = 0; i < n; ++i) gr::yield();
}

int turret_hp = 9;
gr::task turret;

struct soldier {
  const char* name;
  int x;      // position
  int speed;  // units per frame
  int ammo;
};

// walk: moves every frame until `how_long` of frame time has passed.
void walk(soldier& s, gr::duration how_long) {
  const gr::time_point until = gr::now() + how_long;
  while (gr::now() < until) {
    s.x += s.speed;
    wait_frames(1);
  }
}

void fight(soldier s) {
  log(s.name, "enters at x=" + std::to_string(s.x));
  while (s.ammo > 0 && turret_hp > 0) {
    walk(s, 2s);
    log(s.name, "stops at x=" + std::to_string(s.x) + " and aims");
    wait_frames(3);
    if (turret_hp == 0) break;  // someone else finished it while we aimed
    --s.ammo;
    --turret_hp;
    log(s.name, "fires: turret hp " + std::to_string(turret_hp) + ", ammo " + std::to_string(s.ammo));
    if (turret_hp == 0) turret.cancel();  // its pending sleep raises gr::task_cancelled
  }
  log(s.name, turret_hp == 0 ? "cheers and leaves" : "is out of ammo and leaves");
}

void run_turret() {
  struct on_exit {
    ~on_exit() { log("turret", "is destroyed"); }  // runs when the cancel unwinds the task
  } guard;
  for (int volley = 1;; ++volley) {
    gr::sleep_for(1500ms);
    log("turret", "fires volley " + std::to_string(volley));
  }
}

}  // namespace

int main() {
  auto& sched = gr::scheduler::current();
  sched.set_clock(frame_time);

  turret = gr::spawn(run_turret, {.name = "turret"});
  gr::spawn([] { fight({"alice", 0, 2, 3}); }, {.name = "alice"}).detach();
  gr::spawn([] { fight({"bob", 10, 1, 2}); }, {.name = "bob"}).detach();
  gr::spawn(
      [] {
        gr::sleep_until(gr::time_point{} + 12s);
        log("radio", "reinforcements called in");
        // Spawned during this frame: carol enters in the next one.
        gr::spawn([] { fight({"carol", -20, 3, 6}); }, {.name = "carol"}).detach();
      },
      {.name = "radio"})
      .detach();

  for (frame = 0; frame < max_frames; ++frame) {
    if (!sched.run_once()) break;  // every entity is done
    frame_time.advance(frame_step);
  }
  std::printf("the battle is over after %d frames\n", frame);
  turret.join();  // ended by its cancel: joins normally
  sched.reset_clock();
  return 0;
}
