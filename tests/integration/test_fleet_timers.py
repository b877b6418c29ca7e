# The fleet's shared timer heap (host_tools/emulator/fleetio.py) on a fake
# event loop: timers run on the grid given by --timer-tick, everything due
# within one grid step in one wake-up, never before its time.
from host_tools.emulator.__main__ import parse_args
from host_tools.emulator.fleetio import SharedTimers


class FakeLoop:
    def __init__(self):
        self.now = 100.0
        self.armed = []  # [when, fn, cancelled]

    def time(self):
        return self.now

    def call_at(self, when, fn):
        h = FakeHandle(when, fn)
        self.armed.append(h)
        return h

    def fire(self):
        """Runs the one live loop timer at its time."""
        live = [h for h in self.armed if not h.cancelled]
        assert len(live) == 1, live
        self.armed = []
        self.now = live[0].when
        live[0].fn()


class FakeHandle:
    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self):
        self.cancelled = True


def test_timers_due_within_one_tick_run_in_one_wake_up():
    loop = FakeLoop()
    timers = SharedTimers(loop, tick=0.05)
    ran = []

    def note(name, when):
        ran.append((name, round(when, 3), round(loop.time(), 3)))

    timers.at(100.01, note, "a")
    timers.at(100.04, note, "b")
    timers.at(100.06, note, "c")
    loop.fire()
    assert ran == [("a", 100.01, 100.05), ("b", 100.04, 100.05)]
    loop.fire()
    assert ran[2:] == [("c", 100.06, 100.1)]
    assert [h for h in loop.armed if not h.cancelled] == []


def test_an_earlier_timer_moves_the_wake_up_forward_to_its_grid_point():
    loop = FakeLoop()
    timers = SharedTimers(loop, tick=0.05)
    ran = []
    timers.at(100.3, lambda arg, when: ran.append(arg), "late")
    timers.at(100.12, lambda arg, when: ran.append(arg), "early")
    loop.fire()
    assert (ran, round(loop.now, 3)) == (["early"], 100.15)
    loop.fire()
    assert (ran, round(loop.now, 3)) == (["early", "late"], 100.3)


def test_fleet_timer_grid_is_50_ms_unless_told():
    args = parse_args(["--csms", "ws://x", "--count", "2"])
    assert args.timer_tick_ms == 50.0
    args = parse_args(["--csms", "ws://x", "--count", "2", "--timer-tick", "10"])
    assert args.timer_tick_ms == 10.0
