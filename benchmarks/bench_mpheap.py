"""The whole agent's heap on the MicroPython unix port, against the targets.

Targets (developers' guide): the working set of a session at most 32 KiB;
the whole agent, loaded from .mpy files, running within a 96 KiB heap (a
stock ESP32 image without a custom build). Figures, each printed with its
ratio to the target:

  (a) heap held after importing the whole agent from .mpy files (the
      modules a running charger has loaded: what freezing moves to flash),
      and the smallest heap that can import it; the same sources as .py
      for comparison;
  (b) the working set of a full session (boot, card, authorize, start, ten
      MeterValues, stop, with the journal fsynced): the largest live heap
      (after gc.collect, asked for over the bench console while the session
      runs) above the heap the imports hold in that same process;
  (c) the smallest `micropython -X heapsize=N` at which that session
      passes from .mpy files (StopTransaction and ten MeterValues at the
      CSMS), found by bisection.

The session runs on the unix board (firmware/hw/sim.py parts, in-process
Modbus slave) against the bench CSMS on loopback. Figures are for the
binary's word size: the pip `micropython` is 64-bit; set MICROPYTHON32 to a
32-bit unix port (e.g. built with `make -C ports/unix CC="gcc -m32"
LD="gcc -m32"`) to measure what a 32-bit controller such as the ESP32 needs.
MPHEAP_RESOLUTION (bytes, default 4096) sets the bisection's step.
"""

import itertools
import os
import shutil
import time

from host_tools import flash, mpmem
from host_tools.csms import start_csms
from tests.integration.agentkit import AgentProcess, ThreadLoop, free_port, until

TAG = "04A2B3C4D5"
WORKING_SET_TARGET = 32 * 1024
WHOLE_AGENT_TARGET = 96 * 1024
METER_VALUES = 10

# What a running charger has imported (sys.modules of the agent on the unix
# board after a session, less the simulated parts and their boards).
DEVICE_MODULES = (
    "asyncio",
    "firmware.main",
    "firmware.agent",
    "firmware.console",
    "firmware.hardware",
    "firmware.net.manager",
    "firmware.ocpp.v16.handlers",
    "firmware.ocpp.msglog",
    "firmware.store.recovery",
    "boards.base",
)
SIM_MODULES = ("firmware.simhw", "boards.unix")
FILES = flash.firmware_files(include_host_only=True) + flash.board_files() + ["boards/host.py", "boards/unix.py"]

_IMPORT_TABLES = 'from firmware.ocpp.schemas import load\nload("ocpp1.6")'

# The agent as `micropython -m firmware` runs it, after importing every
# module up front and printing the heap they hold (the base of (b)).
_RUN = """
import sys
sys.path[:] = [".", ".frozen"]
import gc
%s
%s
from firmware.__main__ import cli
gc.collect()
print('{"event": "heap_base", "alloc": %%d}' %% gc.mem_alloc())
cli(%r)
"""


def _imports(modules):
    return "\n".join("import " + m for m in modules)


def import_figures(mp, tree, src):
    """(held from .py or None, held, smallest heap that imports it)."""
    code = _imports(DEVICE_MODULES) + "\n" + _IMPORT_TABLES
    held = mpmem.import_heap(tree, DEVICE_MODULES + ("firmware.ocpp.schemas.v16",), mp)
    held_py = mpmem.import_heap(src, DEVICE_MODULES + ("firmware.ocpp.schemas.v16",), mp) if src else None
    least = mpmem.min_heapsize(mpmem._IMPORT % code, tree, binary=mp, resolution=1024)
    return held_py, held, least


class Session:
    """One session of the agent under `mp` with a heap of `heapsize`,
    against the bench CSMS; samples the live heap when `sample` is set."""

    def __init__(self, loop, csms, mp, tree, heapsize, identity, log_dir, sample):
        self.loop = loop
        self.csms = csms
        port = free_port()
        argv = ["--board", "unix", "--csms", csms.ws_url, "--id", identity, "--state-dir",
                os.path.join(log_dir, identity), "--console", "tcp:127.0.0.1:%d" % port,
                "--set", "MeterValueSampleInterval=1", "--quiet"]  # fmt: skip
        code = _RUN % (_imports(DEVICE_MODULES + SIM_MODULES), _IMPORT_TABLES, argv)
        self.identity = identity
        self.url = "socket://127.0.0.1:%d" % port
        self.sample = sample
        self.samples = []
        cmd = [mp, "-X", "heapsize=%d" % heapsize, "-c", code]
        self.proc = AgentProcess(cmd, tree, os.path.join(log_dir, identity + ".log"))

    def base(self):
        import json

        for line in self.proc.lines():
            if '"heap_base"' in line:
                return json.loads(line)["alloc"]
        return None

    def _mem(self, con):
        if self.sample:
            self.samples.append(con.cmd("mem")["alloc"])

    def _tx(self, status):
        rows = self.loop.call(self.csms.storage.list_transactions, self.identity, status)
        return rows[0] if rows else None

    def _meter_values(self, tx_id):
        return len(self.loop.call(self.csms.storage.meter_values, tx_id))

    def run(self, timeout=45):
        """True if the whole session passed."""
        end = time.monotonic() + timeout
        left = lambda: max(0.1, end - time.monotonic())  # noqa: E731
        try:
            con = self.proc.console(self.url, timeout=left())
            with con:
                until(lambda: self.proc.proc.poll() is None and con.cmd("status")["boot"] == "accepted", left())
                self._mem(con)
                con.cmd("plug")
                self._mem(con)
                con.cmd("card " + TAG)
                tx = until(lambda: self._tx("active"), left())
                con.cmd("charge")
                while self._meter_values(tx["id"]) < METER_VALUES * 2:  # energy and power per sample
                    if time.monotonic() > end or self.proc.proc.poll() is not None:
                        return False
                    self._mem(con)
                    time.sleep(0.25)
                con.cmd("stop")
                until(lambda: self._tx("stopped"), left())
                con.cmd("unplug")
                self._mem(con)
            return self.proc.proc.poll() is None
        except Exception:
            return False
        finally:
            self.proc.stop()


def min_session_heap(loop, csms, mp, tree, log_dir, lo, hi, resolution, ways=3):
    """Bisection in `ways` parallel trials per round (the sessions mostly
    wait on the meter interval): the smallest passing heap, to resolution."""
    from concurrent.futures import ThreadPoolExecutor

    n = itertools.count(1)

    def passes(size):
        return Session(loop, csms, mp, tree, size, "HEAP-%d-%d" % (next(n), size), log_dir, False).run()

    if not passes(hi):
        raise RuntimeError("the session fails even with %d bytes" % hi)
    with ThreadPoolExecutor(ways) as pool:
        while hi - lo > resolution:
            step = (hi - lo) / (ways + 1)
            points = sorted(set(int(lo + step * (i + 1)) // resolution * resolution for i in range(ways)) - {lo, hi})
            points = [p for p in points if lo < p < hi]
            if not points:
                break
            results = list(pool.map(passes, points))
            passing = [p for p, ok in zip(points, results) if ok]
            if passing:
                hi = min(passing)
            # a failure above a pass is noise (fragmentation): not a bound
            failing = [p for p, ok in zip(points, results) if not ok and p < hi]
            if failing:
                lo = max(failing)
    return hi


def _kib(n):
    return "%6.1f KiB" % (n / 1024)


def figures(name, mp, loop, csms, tree, src, log_dir, resolution):
    """Every figure for one binary; src None: the agent is frozen in it."""
    print("%s (%s)" % (name, mp))
    held_py, held, least_import = import_figures(mp, tree, src)
    if src:
        print("  (a) heap held by the imported agent: .py %s  .mpy %s  (%d modules and the 1.6 tables)"
              % (_kib(held_py), _kib(held), len(DEVICE_MODULES)))
    else:
        print("  (a) heap still held by the imported agent when frozen: %s (module dicts, classes, functions)"
              % _kib(held))
    print("      smallest heap that imports it: %s" % _kib(least_import))
    s = Session(loop, csms, mp, tree, 4 << 20, "HEAP-WS-%d" % len(log_dir_runs(log_dir)), log_dir, True)
    if not s.run():
        raise RuntimeError("the measured session failed:\n" + s.proc.tail())
    base = s.base()
    ws = max(s.samples) - base
    print("  (b) working set of a session above its imports: %s (%d samples; imports incl. the simulated parts %s)"
          % (_kib(ws), len(s.samples), _kib(base)))
    print("      target %s: ratio %.2f (<= 1 meets it)" % (_kib(WORKING_SET_TARGET), ws / WORKING_SET_TARGET))
    least = min_session_heap(loop, csms, mp, tree, log_dir, max(held, 16384), 4 * held + 131072, resolution)
    print("  (c) smallest -X heapsize for the whole session: %s (to %d bytes)" % (_kib(least), resolution))
    print("      target %s: ratio %.2f (<= 1 meets it)" % (_kib(WHOLE_AGENT_TARGET), least / WHOLE_AGENT_TARGET))
    return held, ws, least


def log_dir_runs(log_dir):
    return [n for n in os.listdir(log_dir) if n.endswith(".log")]


def _binary(env, name):
    """A 32-bit unix build of MicroPython you made yourself, named in the
    environment (MICROPYTHON32, MICROPYTHON32_FROZEN): measured when given."""
    path = os.environ.get(env)
    return path if path and os.path.exists(path) else None


def _stale(binary):
    """True when a firmware file changed after the frozen image was built."""
    built = os.path.getmtime(binary)
    return any(os.path.getmtime(os.path.join(flash.ROOT, f)) > built for f in FILES)


def main():
    mp = flash._bin("micropython")
    if not mp:
        print("(no micropython binary: skipped)")
        return
    resolution = int(os.environ.get("MPHEAP_RESOLUTION", "4096"))
    runs = [("64-bit unix port, agent from .mpy", mp, False)]
    mp32 = _binary("MICROPYTHON32", "micropython")
    if mp32:
        runs.append(("32-bit unix port, agent from .mpy", mp32, False))
    frozen = _binary("MICROPYTHON32_FROZEN", "micropython-frozen")
    if frozen:
        runs.append(("32-bit unix port, agent frozen into the image", frozen, True))
    import tempfile

    tree = flash.compiled_tree(FILES)
    src = mpmem.source_tree(FILES)
    empty = tempfile.mkdtemp(prefix="frozen-")
    log_dir = tempfile.mkdtemp(prefix="mpheap-")
    loop = ThreadLoop()
    csms = loop.run(start_csms(host="127.0.0.1", port=0, db_path=":memory:", id_tags={TAG: "Accepted"}))
    try:
        print("Targets: working set <= %s, whole agent within %s" % (_kib(WORKING_SET_TARGET), _kib(WHOLE_AGENT_TARGET)))
        for name, binary, is_frozen in runs:
            if is_frozen and _stale(binary):
                print("(%s was built before the last change to the agent: rebuild it)" % binary)
            figures(name, binary, loop, csms, empty if is_frozen else tree, None if is_frozen else src, log_dir, resolution)
        if not mp32:
            print("(set MICROPYTHON32=/path/to/a 32-bit unix micropython for ESP32-sized figures)")
    finally:
        loop.run(csms.stop())
        loop.close()
        for d in (tree, src, empty, log_dir):
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
