# Fleets of emulated chargers in one process, on the light FleetHardware:
# every charger runs the real agent; a simulated driver per charger plugs
# in, taps a card, charges, taps again and leaves, over and over.
import asyncio
import json
import os
import random
import time

from host_tools.emulator import charger_settings, run_charger
from host_tools.emulator.hardware import FleetHardware


def fleet_hardware(args, registry=None, identity=None):
    def make():
        hw = FleetHardware(power_w=7400.0 + random.random() * 3600.0)
        if registry is not None:
            registry[identity] = hw
        return hw

    return make


async def _until(event, seconds):
    """Sleep `seconds`, or less if `event` is set meanwhile; True if it was."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def drive_sessions(hw_of, identity, id_tag, every_s, rng, stats, stop):
    """One simulated EV driver: sessions at random intervals (mean every_s).
    Once `stop` is set, a session under way ends at once (tap, unplug) and the
    driver returns: a fleet can be ended without a session left open."""
    if await _until(stop, rng.random() * every_s):
        return
    while not stop.is_set():
        hw = hw_of(identity)
        if hw is None or hw.listener is None:
            await asyncio.sleep(1.0)
            continue
        charge_s = every_s * (0.3 + 0.4 * rng.random())
        hw.plug(True)
        await asyncio.sleep(0.05)
        hw.card(id_tag)
        await asyncio.sleep(0.2)
        hw.draw(True)
        stats["sessions"] += 1
        await _until(stop, charge_s)
        hw = hw_of(identity) or hw
        hw.card(id_tag)
        await asyncio.sleep(0.2)
        hw.plug(False)
        if await _until(stop, every_s - charge_s + rng.random() * 0.1 * every_s):
            return


async def run_fleet(args, duration_s=None, on_agent=None):
    registry = {}
    stats = {"sessions": 0}
    stop = asyncio.Event()
    tasks = []
    rng = random.Random(args.seed if hasattr(args, "seed") else 1)
    base = args.state_dir
    for i in range(args.count):
        ident = "%s-%04d" % (args.id, i + 1)
        s = charger_settings(args, ident, os.path.join(base, ident))
        s["log_frames"] = False
        tasks.append(asyncio.create_task(run_charger(s, fleet_hardware(args, registry, ident), out=_quiet, on_agent=on_agent)))
        if args.sessions:
            tasks.append(asyncio.create_task(drive_sessions(registry.get, ident, args.id_tag, args.session_every, random.Random(rng.random()), stats, stop)))
    t0 = time.monotonic()
    try:
        while duration_s is None or time.monotonic() - t0 < duration_s:
            await asyncio.sleep(10 if duration_s is None else min(10, duration_s))
            print(json.dumps({"event": "fleet_stats", "chargers": args.count, "sessions": stats["sessions"], "uptime_s": round(time.monotonic() - t0)}), flush=True)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
    return stats


def _quiet(line):
    pass
