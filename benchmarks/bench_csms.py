"""Bench CSMS: sustained OCPP messages per second and stop-request latency
with 100 connected charge points.

The charge points run in a separate process (so the figures are the
server's), speak OCPP 1.6 over loopback WebSockets, keep one CALL in flight
each, and answer every CALL from the CSMS with Accepted.

Baselines, measured in the same run:
- throughput: a bare aiohttp WebSocket server that parses each frame and
  answers it (no ocpp package, validation, storage or message log);
- latency: GET /api/sessions/{id} on the same server (HTTP, auth, rate
  limiter, SQLite, no OCPP round trip).
"""
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

N_CHARGERS = 100
LOAD_SECONDS = 3.0
STOP_ROUNDS = 5
STEADY_PER_CP = 5  # MeterValues/s per charge point while stop latency is measured under load


# -- the charge points (run in the loader process) ---------------------------


class LoadCp:
    def __init__(self, ws):
        self.ws = ws
        self.pending = {}
        self.ids = itertools.count()

    async def reader(self):
        async for text in self.ws:
            msg = json.loads(text)
            if msg[0] == 2:
                await self.ws.send(json.dumps([3, msg[1], {"status": "Accepted"}]))
            else:
                future = self.pending.pop(msg[1], None)
                if future is not None:
                    future.set_result(msg)

    async def call(self, action, payload):
        msg_id = str(next(self.ids))
        future = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        await self.ws.send(json.dumps([2, msg_id, action, payload]))
        return await future


def _stamp():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def _loader(url, n):
    from websockets.asyncio.client import connect

    cps, tasks = [], []
    for i in range(n):
        ws = await connect("%s/BENCH%03d" % (url, i), subprotocols=["ocpp1.6"], max_queue=None)
        cp = LoadCp(ws)
        tasks.append(asyncio.ensure_future(cp.reader()))
        cps.append(cp)
    tx = []
    for cp in cps:
        await cp.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Load"})
        answer = await cp.call("StartTransaction", {"connectorId": 1, "idTag": "BENCH", "meterStart": 0,
                                                    "timestamp": _stamp()})
        tx.append(answer[2].get("transactionId"))
    print(json.dumps({"ready": tx}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        words = line.split()
        seconds = float(words[1])
        per_cp = float(words[2]) if len(words) > 2 else 0.0  # messages/s per charge point; 0: flat out
        counts = [0] * n
        deadline = loop.time() + seconds

        async def pump(i, cp):
            payload = {"connectorId": 1, "transactionId": tx[i], "meterValue": [
                {"timestamp": "", "sampledValue": [{"value": "0", "measurand": "Energy.Active.Import.Register"}]}]}
            k = 0
            if per_cp:
                await asyncio.sleep(i / float(n) / per_cp)  # spread the charge points over the period
            next_at = loop.time()
            while loop.time() < deadline:
                if per_cp:
                    next_at += 1.0 / per_cp
                    await asyncio.sleep(max(0.0, next_at - loop.time()))
                k += 1
                payload["meterValue"][0]["timestamp"] = "2025-01-01T00:00:00.%06dZ" % k
                payload["meterValue"][0]["sampledValue"][0]["value"] = str(k)
                await cp.call("MeterValues", payload)
                counts[i] += 1

        started = loop.time()
        await asyncio.gather(*(pump(i, cp) for i, cp in enumerate(cps)))
        print(json.dumps({"count": sum(counts), "seconds": loop.time() - started}), flush=True)
    for t in tasks:
        t.cancel()


def loader_main(argv):
    asyncio.run(_loader(argv[0], int(argv[1])))


# -- the measuring side -------------------------------------------------------


class Loader:
    def __init__(self, url, n):
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_csms", "--loader", url, str(n)],
                                     cwd=here, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    async def line(self):
        return json.loads(await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline))

    async def load(self, seconds, per_cp=0):
        self.proc.stdin.write("load %s %s\n" % (seconds, per_cp))
        self.proc.stdin.flush()
        return await self.line()

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(30)


async def _echo_server():
    """The throughput baseline: parse each frame, answer it, nothing else."""
    from aiohttp import WSMsgType, web

    async def handle(request):
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            payload = {"transactionId": 1, "idTagInfo": {"status": "Accepted"}} \
                if frame[2] == "StartTransaction" else {}
            await ws.send_str(json.dumps([3, frame[1], payload]))
        return ws

    app = web.Application()
    app.router.add_get("/ocpp/{cp}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, "ws://127.0.0.1:%d/ocpp" % runner.addresses[0][1]


def _pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


async def _latencies(http, paths, method):
    out = []
    for path in paths:
        t = time.perf_counter()
        async with http.request(method, path) as resp:
            await resp.read()
            assert resp.status in (200, 202), (resp.status, await resp.text())
        out.append((time.perf_counter() - t) * 1000.0)
    return out


async def _stop_round(http, sessions, rounds):
    stops = await _latencies(http, ["/api/sessions/%d/stop" % s for s in sessions] * rounds, "POST")
    gets = await _latencies(http, ["/api/sessions/%d" % s for s in sessions] * rounds, "GET")
    return stops, gets


def _report_latency(label, stops, gets):
    s50, s99, g50, g99 = _pct(stops, 50), _pct(stops, 99), _pct(gets, 50), _pct(gets, 99)
    print("stop request latency, %s (%d stops): p50 %.2f ms, p99 %.2f ms" % (label, len(stops), s50, s99))
    print("  baseline GET /api/sessions/{id}: p50 %.2f ms, p99 %.2f ms; ratio stop/get p50 %.2fx, p99 %.2fx"
          % (g50, g99, s50 / g50, s99 / g99))


async def _run():
    import aiohttp

    from host_tools.csms import start_csms

    runner, echo_url = await _echo_server()
    loader = Loader(echo_url, N_CHARGERS)
    await loader.line()
    base = await loader.load(LOAD_SECONDS)
    loader.close()
    await runner.cleanup()
    base_rate = base["count"] / base["seconds"]

    import tempfile

    tmp = tempfile.TemporaryDirectory()
    server = await start_csms(port=0, db_path=os.path.join(tmp.name, "bench.sqlite"), rate_limits=False,
                              authorize_unknown=True, call_timeout=10.0)
    try:
        loader = Loader(server.ws_url, N_CHARGERS)
        sessions = (await loader.line())["ready"]
        async with aiohttp.ClientSession(base_url=server.base_url) as http:
            stops, gets = await _stop_round(http, sessions, STOP_ROUNDS)
            got = await loader.load(LOAD_SECONDS)
            steady = asyncio.ensure_future(loader.load(LOAD_SECONDS, STEADY_PER_CP))
            await asyncio.sleep(0.2)
            busy_stops, busy_gets = await _stop_round(http, sessions, 2)
            steady_got = await steady
        loader.close()
    finally:
        await server.stop()
        tmp.cleanup()
    rate = got["count"] / got["seconds"]
    print("%d charge points (OCPP 1.6, loopback), loader in its own process" % N_CHARGERS)
    print("sustained MeterValues taken: %.0f msg/s (validated, stored in SQLite WAL file, ledger, message log)"
          % rate)
    print("  baseline bare aiohttp WebSocket JSON answerer: %.0f msg/s; ratio %.2fx" % (base_rate, rate / base_rate))
    _report_latency("idle", stops, gets)
    _report_latency("while taking %.0f MeterValues/s" % (steady_got["count"] / steady_got["seconds"]),
                    busy_stops, busy_gets)
    print("  median stop under load / idle: %.2fx" % (statistics.median(busy_stops) / statistics.median(stops)))


def main():
    asyncio.run(_run())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--loader"]:
        loader_main(sys.argv[2:])
    else:
        main()
