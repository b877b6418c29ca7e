# Fleets of emulated chargers in one process, on the light FleetHardware:
# every charger runs the real agent; a simulated driver per charger plugs
# in, taps a card, charges, taps again and leaves, a session every
# `session_every` seconds (each charger at its own phase), and keeps count of
# how late each of its actions happened against its schedule.
import asyncio
import gc
import json
import os
import random
import time

from host_tools.emulator import charger_settings, run_charger
from host_tools.emulator.fleetio import Driver, FleetAgent, JournalFlusher, SharedTimers
from host_tools.emulator.hardware import FleetHardware

LATE_MS = 500  # an action more than this after its scheduled time is late
# The fleet's timer grid (--timer-tick): each wake-up of the process costs
# far more than the timers it runs (a 2-core VM: 10 ms gave 2900 messages per
# CPU-second at 200 chargers, 50 ms 4300), and a driver's action or a
# meter sample up to 50 ms after its time is still on time for OCPP.
TIMER_TICK_MS = 50.0


def fleet_hardware(args, registry=None, identity=None):
    def make():
        hw = FleetHardware(power_w=7400.0 + random.random() * 3600.0)
        if registry is not None:
            registry[identity] = hw
        return hw

    return make


def journal_note(args):
    """How a fleet keeps its journals, for its output."""
    if not args.no_sync:
        return "synced: fsync per record"
    every = getattr(args, "journal_flush_s", 0)
    if every > 0:
        return ("unsynced (--no-sync), new records handed to the OS every %g s: a crash of this process may lose "
                "the last %g s of records, of this host the newest" % (every, every))
    return "unsynced (--no-sync), records handed to the OS after every agent step: a crash of this host may lose the newest"


def session_plan(every_s, rng):
    """One session as (offset from its start in s, action): plug in, tap the
    card, the EV asks for energy, tap again after a random charge, unplug.
    It fits in every_s, so sessions every every_s never overlap."""
    charge_s = max(0.05, every_s - 0.5) * (0.3 + 0.4 * rng.random())
    return ((0.0, "plug"), (0.05, "card"), (0.25, "draw"), (0.25 + charge_s, "card"), (0.45 + charge_s, "unplug"))


class Lateness:
    """How late scheduled actions ran: count, how many later than late_ms, worst."""

    def __init__(self, late_ms=LATE_MS):
        self.late_ms = late_ms
        self.reset()

    def reset(self):
        self.actions = 0
        self.late = 0
        self.worst_ms = 0.0
        self.sessions = 0

    async def until(self, loop, when):
        """Sleep until loop time `when`; record how late we woke."""
        delay = when - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return self.note((loop.time() - when) * 1000.0)

    def note(self, ms):
        """One action carried out ms after its time."""
        self.actions += 1
        if ms > self.worst_ms:
            self.worst_ms = ms
        if ms > self.late_ms:
            self.late += 1
        return True

    def snapshot(self):
        return {"sessions": self.sessions, "actions": self.actions, "late": self.late, "late_max_ms": round(self.worst_ms, 1)}


async def run_fleet(args, duration_s=None, on_agent=None, report=True, stats=None):
    """Run args.count chargers (and their drivers with args.sessions) until
    cancelled or for duration_s. Returns the counters ({"sessions": n,
    "lateness": Lateness}); `stats` (a dict) receives them at once."""
    registry = {}
    lateness = Lateness()
    stats = {} if stats is None else stats
    stats["lateness"] = lateness
    tasks = []
    rng = random.Random(args.seed if hasattr(args, "seed") else 1)
    base = args.state_dir
    # One timer heap for every agent and driver; connections read by the
    # event loop's callbacks (host_tools/emulator/fleetio.py).
    timers = SharedTimers(tick=getattr(args, "timer_tick_ms", TIMER_TICK_MS) / 1000.0)
    drivers = []
    every = getattr(args, "journal_flush_s", 0)
    flusher = JournalFlusher(timers, every) if args.no_sync and every > 0 else None

    def make_agent(settings, hw, out):
        return FleetAgent(settings, hw, timers, out=out, flusher=flusher)

    for i in range(args.count):
        ident = "%s-%04d" % (args.id, i + 1)
        s = charger_settings(args, ident, os.path.join(base, ident))
        s["log_frames"] = False
        tasks.append(asyncio.create_task(run_charger(s, fleet_hardware(args, registry, ident), out=False, on_agent=on_agent, make_agent=make_agent)))
        if args.sessions:
            drivers.append(Driver(timers, registry.get, ident, args.id_tag, args.session_every, random.Random(rng.random()), lateness, session_plan))
    # Each task builds its agent in its first step; thousands of long-lived
    # agents are then kept out of the collector's passes (gen 2 over a big
    # fleet takes long enough to make actions late).
    await asyncio.sleep(0)
    gc.freeze()
    t0 = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - t0 < duration_s:
            await asyncio.sleep(10 if duration_s is None else min(10, duration_s - (time.monotonic() - t0)))
            if report:
                line = {"event": "fleet_stats", "chargers": args.count, "uptime_s": round(time.monotonic() - t0)}
                line.update(lateness.snapshot())
                print(json.dumps(line), flush=True)
    finally:
        for d in drivers:
            d.stop()
        for t in tasks:
            t.cancel()
    stats["sessions"] = lateness.sessions
    return stats

