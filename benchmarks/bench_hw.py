"""Hardware drivers: CRC speed, meter reading cost, and memory on MicroPython.

Each figure is printed next to its baseline, measured in the same run:
  - CRC-16 of a 157-byte frame: the 16-entry nibble table against the
    textbook bitwise loop, on CPython and on the MicroPython unix port;
  - one SDM630 three-phase reading: the planned block reads against one
    request per value, in bytes and wire time at 9600 baud, and measured
    over a real pty against pymodbus;
  - heap taken by importing the device drivers from .mpy files against
    importing the same sources as .py, and the smallest heap
    (`micropython -X heapsize=N`) at which a driver session passes, .mpy
    against .py; the session's working set above its imports.
"""

import asyncio
import os
import shutil
import time

from firmware.hw import meters, modbus
from host_tools import flash, mpmem
from tests.hwfakes import crc16_bitwise

_CRC_SCRIPT = r"""
import time
from firmware.hw.modbus import crc16
from tests.hwfakes import crc16_bitwise
frame = bytes((i * 7 + 3) & 0xFF for i in range(157))
def bench(f, n):
    t0 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.perf_counter() * 1e6)
    for _ in range(n):
        f(frame, 157)
    t1 = time.ticks_us() if hasattr(time, "ticks_us") else int(time.perf_counter() * 1e6)
    return (t1 - t0) / n
n = 300
print("OK", int(bench(crc16_bitwise, n) * 100), int(bench(crc16, n) * 100))
"""

_MODULES = [
    "firmware.compat",
    "firmware.hw",
    "firmware.hw.modbus",
    "firmware.hw.meters",
    "firmware.hw.relay",
    "firmware.hw.lock",
    "firmware.hw.pilot",
    "firmware.hw.rfid",
    "firmware.hw.status",
]

# A driver session on simulated parts: card, lock, contactor, ten meter
# readings, stop. Prints the heap held after the imports, the drivers' own
# objects, and the largest live heap (collected, then measured, at every
# step) above those.
_SESSION = r"""
import sys
sys.path[:] = [".", ".frozen"]
import gc
gc.collect()
a0 = gc.mem_alloc()
import asyncio
from firmware.hw import sim
from firmware.hw.modbus import ModbusMaster
gc.collect()
a1 = gc.mem_alloc()
peak = [a1]
def mark():
    gc.collect()
    m = gc.mem_alloc()
    if m > peak[0]:
        peak[0] = m
class Clock:
    ms = 0
    def __call__(self):
        self.ms += 1
        return self.ms
clock = Clock()
async def sleep_ms(ms):
    clock.ms += ms
bench = sim.SimBench(ticks=clock)
gc.collect()
a2 = gc.mem_alloc()
master = ModbusMaster(bench.meter_line, ticks=clock, sleep_ms=sleep_ms)
d = sim.drivers(bench, master=master)
gc.collect()
a3 = gc.mem_alloc()
peak[0] = a3
def until(name, want):
    for _ in range(5000):
        e = d[name].poll()
        mark()
        if e == want:
            return
    raise SystemExit("no " + want)
bench.present_card("04A1B2C3")
until("rfid", "04A1B2C3")
bench.plug()
until("pilot", "B")
d["lock"].lock()
until("lock", "locked")
d["pilot"].set_current(16)
bench.ev_request(True)
until("pilot", "C")
d["relay"].close()
until("relay", "closed")
async def readings():
    for _ in range(10):
        clock.ms += 10000
        assert await d["meter"].update() is None
        mark()
        for s in d["meter"].sampled():
            mark()
asyncio.run(readings())
e = d["meter"].energy_wh()
bench.ev_request(False)
d["relay"].open()
until("relay", "opened")
d["lock"].unlock()
until("lock", "unlocked")
if not e or e < 100:
    raise SystemExit("no energy")
print("OK", a1 - a0, a3 - a2, peak[0] - a3, e)
"""


def bench_crc(mp):
    print("CRC-16/MODBUS of a 157-byte frame (us per frame), baseline: bitwise loop")
    frame = bytes((i * 7 + 3) & 0xFF for i in range(157))
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        crc16_bitwise(frame, 157)
    t1 = time.perf_counter()
    for _ in range(n):
        modbus.crc16(frame, 157)
    t2 = time.perf_counter()
    bit, nib = (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6
    print("  CPython      bitwise %7.1f  nibble table %7.1f  ratio %.2fx faster" % (bit, nib, bit / nib))
    if mp:
        bit, nib = mpmem.ok_fields(_CRC_SCRIPT, flash.ROOT)
        print("  MicroPython  bitwise %7.1f  nibble table %7.1f  ratio %.2fx faster" % (bit / 100, nib / 100, bit / nib))


def _wire_cost(blocks, baud=9600, turnaround_ms=20):
    """(bytes on the wire, ms at baud) for a list of (start, count) reads,
    with the inter-frame gap and a slave turnaround per request."""
    char_ms = modbus.char_time_us(baud) / 1000
    gap_ms = modbus.frame_gap_us(baud) / 1000
    nbytes = sum(8 + 5 + 2 * count for _, count in blocks)
    ms = nbytes * char_ms + len(blocks) * (2 * gap_ms + turnaround_ms)
    return nbytes, ms


def bench_meter_reading():
    from host_tools.serial_link import FdPort, open_pty
    from host_tools.sim_meter import SimMeterServer

    rows = meters.select_rows(meters.SDM630, 3)
    planned = meters.plan_blocks(rows)
    per_value = [(r[2], 2, i, i + 1) for i, r in enumerate(rows)]
    one_block = meters.plan_blocks(rows, max_gap=1000)
    print("SDM630 three-phase reading (13 values), baseline: one request per value")
    base_b, base_ms = _wire_cost([b[:2] for b in per_value])
    for name, blocks in (("one request per value", per_value), ("one block 0x00-0x4B", one_block), ("planned blocks", planned)):
        b, ms = _wire_cost([x[:2] for x in blocks])
        print(
            "  %-22s %2d requests %4d bytes %6.1f ms at 9600 baud  ratio %.2fx"
            % (name, len(blocks), b, ms, base_ms / ms)
        )
    master_fd, path, keep = open_pty()
    server = SimMeterServer(path, "SDM630").start()
    try:
        master = modbus.ModbusMaster(FdPort(master_fd), timeout_ms=300)
        times = {}
        for name, blocks in (("one request per value", per_value), ("planned blocks", planned)):
            m = meters.Meter(master, meters.SDM630)
            m.blocks = blocks
            asyncio.run(m.update())
            t0 = time.perf_counter()
            for _ in range(20):
                asyncio.run(m.update())
            times[name] = (time.perf_counter() - t0) / 20 * 1000
        base = times["one request per value"]
        print("  over a pty to pymodbus (no baud-rate delay; asyncio sleeps and turnarounds):")
        for name, ms in times.items():
            print("  %-22s %6.1f ms per reading  ratio %.2fx" % (name, ms, base / ms))
    finally:
        server.stop()
        os.close(master_fd)
        os.close(keep)


def bench_memory(mp):
    files = flash.firmware_files(include_host_only=True) + flash.board_files()
    mpy = flash.compiled_tree(files)
    src = mpmem.source_tree(files)
    try:
        print("MicroPython heap (unix port, bytes), baseline: the same modules as .py source")
        from_py = mpmem.import_heap(src, _MODULES, mp)
        from_mpy = mpmem.import_heap(mpy, _MODULES, mp)
        print("  held after importing the device drivers (%d modules): .py %6d  .mpy %6d"
              % (len(_MODULES), from_py, from_mpy))
        imports = mpmem._IMPORT % "\n".join("import " + m for m in _MODULES)
        min_py = mpmem.min_heapsize(imports, src, binary=mp)
        min_mpy = mpmem.min_heapsize(imports, mpy, binary=mp)
        print("  smallest heap that can import them: .py %6d  .mpy %6d  ratio %.2fx smaller"
              % (min_py, min_mpy, min_py / min_mpy))
        imp_py, drv_py, ws_py, e = mpmem.ok_fields(_SESSION, src, binary=mp)
        imp_mpy, drv_mpy, ws_mpy, e = mpmem.ok_fields(_SESSION, mpy, binary=mp)
        print("  driver session (card, lock, relay, 10 meter readings, stop; %d Wh):" % e)
        print("    imports incl. asyncio and the simulator: .py %6d  .mpy %6d" % (imp_py, imp_mpy))
        print("    the six driver objects and their buffers: .py %6d  .mpy %6d" % (drv_py, drv_mpy))
        print("    live data above that during the session (peak of collected samples): .py %6d  .mpy %6d"
              % (ws_py, ws_mpy))
        min_py = mpmem.min_heapsize(_SESSION, src, binary=mp)
        min_mpy = mpmem.min_heapsize(_SESSION, mpy, binary=mp)
        print("    smallest passing -X heapsize: .py %6d  .mpy %6d  ratio %.2fx smaller"
              % (min_py, min_mpy, min_py / min_mpy))
    finally:
        shutil.rmtree(mpy, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)


def main():
    mp = flash._bin("micropython")
    bench_crc(mp)
    bench_meter_reading()
    if mp:
        bench_memory(mp)
    else:
        print("(no micropython binary: memory figures skipped)")


if __name__ == "__main__":
    main()
