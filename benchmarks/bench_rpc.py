# RPC core throughput: parse + validate + dispatch + answer of a CALL.
#
# Measured in one run, on the same frames:
#   ours      firmware.ocpp.rpc.Endpoint with the generated 1.6 tables
#   ocpp      the `ocpp` package's ChargePoint.route_message (its public API,
#             a connection object that only collects what it would send)
#   floor     json.loads + json.dumps of the same frame and answer, nothing else
# Targets (README): ours >= 10x ocpp, ours >= 0.5x floor.
import asyncio
import json
import os
import subprocess
import sys
import time

from firmware.ocpp import rpc
from firmware.ocpp.errors import V16
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check

METER_VALUES = [
    2,
    "0123456789abcdef-42",
    "MeterValues",
    {
        "connectorId": 1,
        "transactionId": 123456,
        "meterValue": [
            {
                "timestamp": "2026-11-25T15:56:40.123Z",
                "sampledValue": [
                    {"value": "12345.6", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7012.5", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "10.12", "context": "Sample.Periodic", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    {"value": "231.4", "context": "Sample.Periodic", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                ],
            }
        ],
    },
]
START = [
    2,
    "0123456789abcdef-43",
    "StartTransaction",
    {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 12345, "timestamp": "2026-11-25T15:56:40.123Z"},
]
ANSWERS = {
    "MeterValues": {},
    "StartTransaction": {"transactionId": 123457, "idTagInfo": {"status": "Accepted"}},
}


def ours(text, n):
    table = load(V16).ACTIONS
    handlers = {
        "MeterValues": lambda p: ANSWERS["MeterValues"],
        "StartTransaction": lambda p: ANSWERS["StartTransaction"],
    }
    ep = rpc.Endpoint(V16, table, handlers, check=check)
    t0 = time.perf_counter()
    for _ in range(n):
        ep.receive(text, 0)
    return n / (time.perf_counter() - t0)


def floor(text, n):
    msg = json.loads(text)
    answer = ANSWERS[msg[2]]
    loads, dumps = json.loads, json.dumps
    t0 = time.perf_counter()
    for _ in range(n):
        m = loads(text)
        dumps([3, m[1], answer])
    return n / (time.perf_counter() - t0)


def ocpp_package(text, n):
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result

    class Sink:
        async def send(self, msg):
            pass

        async def recv(self):
            raise RuntimeError

    class Central(ChargePoint):
        @on("MeterValues")
        def mv(self, **kw):
            return call_result.MeterValues()

        @on("StartTransaction")
        def st(self, **kw):
            return call_result.StartTransaction(transaction_id=123457, id_tag_info={"status": "Accepted"})

    import logging

    logging.getLogger("ocpp").setLevel(logging.WARNING)
    cp = Central("CP1", Sink())

    async def go():
        t0 = time.perf_counter()
        for _ in range(n):
            await cp.route_message(text)
        return n / (time.perf_counter() - t0)

    return asyncio.run(go())


MP_SCRIPT = """
import sys, time, gc
sys.path.insert(0, '.')
from firmware.ocpp import rpc
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check
gc.collect()
base = gc.mem_alloc()
table = load('ocpp1.6').ACTIONS
gc.collect()
tables = gc.mem_alloc() - base
ep = rpc.Endpoint('ocpp1.6', table, {'MeterValues': lambda p: {}, 'StartTransaction': lambda p: {'transactionId': 123457, 'idTagInfo': {'status': 'Accepted'}}}, check=check)
for name, text in ((%r, %r), (%r, %r)):
    n = 2000
    t0 = time.ticks_us()
    for _ in range(n):
        ep.receive(text, 0)
    dt = time.ticks_diff(time.ticks_us(), t0)
    print('%%-18s %%d' %% (name, int(n * 1e6 / dt)))
print('tables', tables)
"""


def micropython():
    from tests.support import micropython_binary, repo_root

    mp = micropython_binary()
    script = MP_SCRIPT % tuple(x for frame in (METER_VALUES, START) for x in (frame[2], json.dumps(frame, separators=(",", ":"))))
    out = subprocess.run([mp, "-X", "heapsize=2M", "-c", script], cwd=repo_root(), capture_output=True, text=True, timeout=300)
    return out.stdout.strip() or out.stderr.strip()


def main():
    n = int(os.environ.get("BENCH_N", "20000"))
    print("CALL handling per second, CPython %s (n=%d)" % (sys.version.split()[0], n))
    print("%-18s %12s %12s %12s %10s %10s" % ("frame", "ours", "ocpp pkg", "json floor", "ours/ocpp", "ours/floor"))
    print("(floor: json.loads of the CALL + json.dumps of the answer, stdlib defaults)")
    for frame in (METER_VALUES, START):
        text = json.dumps(frame, separators=(",", ":"))
        a = ours(text, n)
        b = ocpp_package(text, max(n // 10, 500))
        c = floor(text, n)
        print("%-18s %12.0f %12.0f %12.0f %9.1fx %9.2fx" % (frame[2], a, b, c, a / b, a / c))
    print("targets: ours/ocpp >= 10x, ours/floor >= 0.5x")
    print("MicroPython unix port (calls/s; bytes of the 1.6 tables on the heap):")
    print("  " + micropython().replace("\n", "\n  "))


if __name__ == "__main__":
    main()
