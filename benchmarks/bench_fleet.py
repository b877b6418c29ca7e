"""Emulated chargers per CPU core.

Three processes: a fast CSMS (a raw asyncio WebSocket server answering every
CALL at once from JSON text it writes itself, without schema validation: it
is not what is measured, and its CPU is charged to neither side), the fleet
being measured, and this one, which runs the trials and prints the figures.

1. Messages per CPU-second of the fleet process, for our emulator
   (host_tools/emulator/fleet.py: the real agent per charger on the fleet
   model, with a simulated driver) and, in the same run, for a fleet of
   charge points written on the `ocpp` package (ocpp.v16.ChargePoint as the
   charge point) doing the same session script against the same CSMS. The
   ratio is ours / package (the target is 5x or more).
2. How many of our chargers one core sustains, each doing a session every
   SESSION_EVERY_S seconds, with no deadline missed. "Late" (LATE_MS):
   a simulated driver's action (plug, card, EV draws, card, unplug) carried
   out more than LATE_MS after its scheduled time, or a message the agent
   was due to send reaching the CSMS more than LATE_MS after its time: the
   timestamp the agent put in it (the status change, the start, the stop,
   the meter reading), and for periodic MeterValues the sampling deadline
   (transaction start + k x MeterValueSampleInterval). The fleet process is
   one asyncio thread: one core by construction.

The journals are unsynced in the fleet (no fsync per record; the output
says so): what is measured is the agent, not the disk.

  make bench BENCH=fleet                    # the ratio and a short capacity check (~1.5 min)
  FLEET_SEARCH=1 make bench BENCH=fleet     # the full capacity search (several minutes)
  FLEET_PROFILE=1 make bench BENCH=fleet    # also cProfile the fleet at the largest passing size
"""
import asyncio
import base64
import datetime
import hashlib
import json
import os
import random
import sys
import tempfile
import time

LATE_MS = 500  # half the finest OCPP interval (1 s): a sample this late may land in the next second
SESSION_EVERY_S = 5.0
SAMPLE_INTERVAL_S = 1  # MeterValueSampleInterval during the sessions
RATIO_CHARGERS = 200
RATIO_WINDOW_S = 10.0
WINDOW_S = 15.0
# From the last boot to the window: a large fleet's boot storm (thousands of
# connections, boots and first sessions within seconds) leaves messages
# queued behind one another that take several seconds to drain; what is
# measured is the steady state after it. With 5 s (one session), fleets of
# 1600 to 2000 chargers still showed that backlog in their window (10 % more
# messages than a steady state sends, seconds late); with 20 s they did not.
SETTLE_S = 4 * SESSION_EVERY_S
QUICK_SIZES = (500, 750, 1000)  # the default run checks these; FLEET_SEARCH=1 searches
ID_TAG = "TAG-EMU"

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the fast CSMS (its own process) ---------------------------------------------------------

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _epoch(text):
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return None


def _iso_now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


class Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.t0, self.cpu0, self.wait0 = time.monotonic(), time.process_time(), _run_delay()
        self.calls = 0
        self.by_action = {}
        self.late = 0
        self.late_max_ms = 0.0
        self.checked = 0
        self.boots = 0

    def lateness(self, due, now):
        if due is None:
            return
        ms = (now - due) * 1000.0
        self.checked += 1
        if ms > self.late_max_ms:
            self.late_max_ms = ms
        if ms > LATE_MS:
            self.late += 1

    def snapshot(self, connections):
        wall = time.monotonic() - self.t0
        waited = _run_delay()
        return {"calls": self.calls, "by_action": self.by_action, "late": self.late, "late_max_ms": round(self.late_max_ms, 1),
                "checked": self.checked, "boots": self.boots, "connections": connections,
                "cpu_share": (time.process_time() - self.cpu0) / wall if wall else 0.0,
                "waited_share": None if waited is None else (waited - self.wait0) / wall if wall else 0.0}


_ACCEPTED = '{"idTagInfo":{"status":"Accepted"}}'


class Csms:
    """Answers every CALL at once, from JSON text it writes itself (no RPC
    layer, no validation: the CSMS is not what is measured, and must keep
    up with several thousand messages a second on one core); measures how
    late each timestamped message arrived."""

    def __init__(self):
        self.stats = Stats()
        self.starts = {}  # transactionId -> start epoch (s)
        self.next_tx = 1
        self.connections = 0
        self.now = 0.0  # arrival time of the data being handled
        self.handlers = {"BootNotification": self.boot, "Heartbeat": self.heartbeat, "StatusNotification": self.status,
                         "Authorize": self.authorize, "StartTransaction": self.start, "StopTransaction": self.stop,
                         "MeterValues": self.meter_values}

    def handle(self, text):
        """The answer to one text frame: a CALL's CALLRESULT (or CALLERROR),
        None for anything else."""
        try:
            msg = json.loads(text)
        except ValueError:
            return None
        if type(msg) is not list or len(msg) != 4 or msg[0] != 2:
            return None
        _, mid, action, payload = msg
        st = self.stats
        st.calls += 1
        st.by_action[action] = st.by_action.get(action, 0) + 1
        fn = self.handlers.get(action)
        if fn is None:
            return '[4,%s,"NotImplemented","",{}]' % json.dumps(mid)
        return "[3,%s,%s]" % (json.dumps(mid), fn(payload))

    def boot(self, p):
        self.stats.boots += 1
        return '{"status":"Accepted","currentTime":"%s","interval":3600}' % _iso_now()

    def heartbeat(self, p):
        return '{"currentTime":"%s"}' % _iso_now()

    def status(self, p):
        self.stats.lateness(_epoch(p.get("timestamp")), self.now)
        return "{}"

    def authorize(self, p):
        return _ACCEPTED

    def start(self, p):
        tx = self.next_tx
        self.next_tx += 1
        t = _epoch(p["timestamp"])
        self.starts[tx] = t
        self.stats.lateness(t, self.now)
        return '{"transactionId":%d,"idTagInfo":{"status":"Accepted"}}' % tx

    def stop(self, p):
        self.starts.pop(p["transactionId"], None)
        self.stats.lateness(_epoch(p["timestamp"]), self.now)
        return _ACCEPTED if p.get("idTag") else "{}"

    def meter_values(self, p):
        for mv in p["meterValue"]:
            t = _epoch(mv["timestamp"])
            periodic = mv["sampledValue"] and mv["sampledValue"][0].get("context") == "Sample.Periodic"
            begin = self.starts.get(p.get("transactionId"))
            if periodic and begin is not None and t is not None:
                k = max(1, round((t - begin) / SAMPLE_INTERVAL_S))
                self.stats.lateness(begin + k * SAMPLE_INTERVAL_S, self.now)  # the sampling deadline
            else:
                self.stats.lateness(t, self.now)
        return "{}"


_RX = bytearray(65536)  # every connection of the CSMS reads into this, then copies what it got
_RX_MV = memoryview(_RX)


class WsServerProtocol(asyncio.BufferedProtocol):
    """RFC 6455 server side, just enough for OCPP-J: one handshake, then
    masked single-frame text messages in, unmasked text frames out. Reads
    with recv_into (a stream's recv() allocates 256 KiB per read)."""

    def __init__(self, csms):
        self.csms = csms
        self.buf = bytearray()
        self.open = False
        self.t = None

    def connection_made(self, transport):
        self.t = transport

    def connection_lost(self, exc):
        if self.open:
            self.csms.connections -= 1
        self.open = False

    def get_buffer(self, sizehint):
        return _RX_MV

    def buffer_updated(self, nbytes):
        self.csms.now = time.time()
        self.buf += _RX_MV[:nbytes]
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            del self.buf[: end + 4]
            key = None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip().encode()
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            self.t.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n")
            self.open = True
            self.csms.connections += 1
        buf = self.buf
        while len(buf) >= 2:
            b1 = buf[1]
            n = b1 & 0x7F
            i = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                i = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n = int.from_bytes(buf[2:10], "big")
                i = 10
            masked = b1 & 0x80
            if masked:
                i += 4
            if len(buf) < i + n:
                return
            op = buf[0] & 0x0F
            payload = bytes(buf[i : i + n])
            if masked and n:
                mask = bytes(buf[i - 4 : i])
                key = (mask * (n // 4 + 1))[:n]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
            del buf[: i + n]
            if op == 1:
                reply = self.csms.handle(payload.decode())
                if reply is not None:
                    self.send(0x1, reply.encode())
            elif op == 9:
                self.send(0xA, payload)
            elif op == 8:
                self.send(0x8, payload[:2])
                self.t.close()
                return

    def send(self, op, data):
        n = len(data)
        if n < 126:
            head = bytes((0x80 | op, n))
        elif n < 65536:
            head = bytes((0x80 | op, 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, 127)) + n.to_bytes(8, "big")
        self.t.write(head + data)


async def _csms_main():
    csms = Csms()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: WsServerProtocol(csms), "127.0.0.1", 0, backlog=4096)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        if line == "reset":
            csms.stats.reset()
        print(json.dumps(csms.stats.snapshot(csms.connections)), flush=True)
    server.close()


# ---- the fleets (their own process) ------------------------------------------------------------


def _cpu():
    return time.process_time()


def _run_delay():
    """Seconds this process has spent runnable but waiting for a CPU (Linux
    schedstat; None elsewhere): other load on the machine, not ours."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _rusage():
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def _settle(warm_s, ready):
    """Wait until the fleet is up (ready() true, or warm_s has passed) and in
    its rhythm, then announce the measuring window."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while not ready() and loop.time() - t0 < warm_s:
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE_S)  # every charger into its rhythm, the boot storm's backlog drained
    print(json.dumps({"window": "start", "setup_s": round(loop.time() - t0, 1)}), flush=True)
    await asyncio.sleep(0.05)  # the orchestrator resets the CSMS counters meanwhile


async def _measure(window_s, lateness, profile=None):
    """This process's CPU seconds and wall seconds over the window."""
    lateness.reset()
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    c0, w0, r0, d0 = _cpu(), time.monotonic(), _rusage(), _run_delay()
    await asyncio.sleep(window_s)
    cpu, wall, r1, d1 = _cpu() - c0, time.monotonic() - w0, _rusage(), _run_delay()
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    lateness.user_s, lateness.sys_s = r1[0] - r0[0], r1[1] - r0[1]
    lateness.waited_s = None if d0 is None else d1 - d0
    return cpu, wall


async def _ours(url, n, window_s, profile=None, state_dir=None):
    from host_tools.emulator.__main__ import parse_args
    from host_tools.emulator.fleet import run_fleet

    args = parse_args(["--csms", url, "--id", "BF", "--count", str(n), "--state-dir", state_dir, "--sessions",
                       "--session-every", str(SESSION_EVERY_S), "--id-tag", ID_TAG, "--no-sync", "--quiet",
                       "--journal-flush", os.environ.get("JFLUSH", "0"),
                       "--set", "MeterValueSampleInterval=%d" % SAMPLE_INTERVAL_S, "--set", "ClockAlignedDataInterval=0",
                       "--backoff-min", "0.5", "--backoff-base", "2", "--backoff-max", "5"])
    agents = {}
    stats = {}

    def on_agent(agent):
        agents[agent.cp.identity] = agent

    fleet = asyncio.ensure_future(run_fleet(args, on_agent=on_agent, report=False, stats=stats))

    def booted():
        return sum(1 for a in agents.values() if a.cp.boot == 2)

    await _settle(60.0 + n / 50.0, lambda: booted() >= n)
    cpu, wall = await _measure(window_s, stats["lateness"], profile)
    lt = stats["lateness"]
    return {"cpu_s": cpu, "wall_s": wall, "user_s": lt.user_s, "sys_s": lt.sys_s, "waited_s": lt.waited_s, "driver": lt.snapshot(), "booted": booted()}


async def _package(url, n, window_s, profile=None, state_dir=None):
    """The same session script, on charge points written with the ocpp package."""
    from ocpp.v16 import ChargePoint, call
    from websockets.asyncio.client import connect

    from host_tools.emulator.fleet import Lateness, session_plan

    lateness = Lateness(LATE_MS)
    booted = []

    def now():
        return _iso_now()

    async def one(i, rng):
        ws = await connect("%s/PK-%04d" % (url, i), subprotocols=["ocpp1.6"], max_queue=None, ping_interval=None)
        cp = ChargePoint("PK-%04d" % i, ws, response_timeout=30)
        reader = asyncio.ensure_future(cp.start())
        try:
            await cp.call(call.BootNotification(charge_point_model="Package", charge_point_vendor="Bench"))
            for cid, status in ((0, "Available"), (1, "Available")):
                await cp.call(call.StatusNotification(connector_id=cid, error_code="NoError", status=status, timestamp=now()))
            booted.append(i)
            loop = asyncio.get_running_loop()
            start = loop.time() + rng.random() * SESSION_EVERY_S
            energy = 0
            k = 0
            while True:
                t0 = start + k * SESSION_EVERY_S
                k += 1
                plan = session_plan(SESSION_EVERY_S, rng)
                tx = None
                sampler = None
                for offset, what in plan:
                    await lateness.until(loop, t0 + offset)
                    if what == "plug":
                        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing", timestamp=now()))
                    elif what == "card" and tx is None:
                        await cp.call(call.Authorize(id_tag=ID_TAG))
                        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="SuspendedEV", timestamp=now()))
                        res = await cp.call(call.StartTransaction(connector_id=1, id_tag=ID_TAG, meter_start=energy, timestamp=now()))
                        tx = res.transaction_id

                        async def sample(tx=tx):
                            nonlocal energy
                            due = loop.time()
                            while True:
                                due += SAMPLE_INTERVAL_S
                                await asyncio.sleep(max(0.0, due - loop.time()))
                                energy += 3
                                await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[{
                                    "timestamp": now(), "sampled_value": [
                                        {"value": str(energy), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                                        {"value": "11000.0", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"}]}]))

                        sampler = asyncio.ensure_future(sample())
                    elif what == "draw":
                        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging", timestamp=now()))
                    elif what == "card":
                        sampler.cancel()
                        await cp.call(call.StopTransaction(meter_stop=energy, timestamp=now(), transaction_id=tx, reason="Local", id_tag=ID_TAG))
                        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Finishing", timestamp=now()))
                    elif what == "unplug":
                        await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available", timestamp=now()))
                lateness.sessions += 1
        finally:
            reader.cancel()
            await ws.close()

    rng = random.Random(7)
    tasks = [asyncio.ensure_future(one(i, random.Random(rng.random()))) for i in range(n)]
    await _settle(60.0 + n / 50.0, lambda: len(booted) >= n)
    cpu, wall = await _measure(window_s, lateness)
    return {"cpu_s": cpu, "wall_s": wall, "user_s": lateness.user_s, "sys_s": lateness.sys_s, "waited_s": lateness.waited_s, "driver": lateness.snapshot(), "booted": len(booted)}


def _fleet_main(argv):
    kind, url, n, window, state_dir = argv[0], argv[1], int(argv[2]), float(argv[3]), argv[4]
    profile = argv[5] if len(argv) > 5 else None
    import logging

    logging.disable(logging.CRITICAL)  # the ocpp package logs every frame at INFO
    main = _ours if kind == "ours" else _package

    async def run():
        result = await main(url, n, window, profile, state_dir)
        print(json.dumps({"result": result}), flush=True)
        # Thousands of connections to tear down measure nothing: leave now.
        os._exit(0)

    asyncio.run(run())


# ---- the orchestrator (this process) -----------------------------------------------------------


class Proc:
    def __init__(self, args):
        import subprocess

        self.p = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_fleet"] + args, cwd=HERE,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def line(self, timeout=600):
        import select

        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise RuntimeError("no output within %ds" % timeout)
        text = self.p.stdout.readline()
        if not text:
            raise RuntimeError("the process ended (exit %s)" % self.p.wait())
        return json.loads(text)

    def send(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.line()

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
        except OSError:
            pass
        try:
            self.p.wait(30)
        except Exception:
            self.p.kill()


def trial(csms, url, kind, n, window_s, profile=None):
    """One fleet run: its CPU over the window, the CSMS's count and lateness."""
    import shutil

    state = tempfile.mkdtemp(prefix="bench-fleet-")
    fleet = Proc(["--fleet", kind, url, str(n), str(window_s), state] + ([profile] if profile else []))
    try:
        msg = fleet.line()
        assert msg.get("window") == "start", msg
        csms.send("reset")
        res = fleet.line()["result"]
        seen = csms.send("stats")
    finally:
        try:
            fleet.p.wait(60)
        except Exception:
            fleet.p.kill()
        shutil.rmtree(state, ignore_errors=True)
    res["csms"] = seen
    res["n"] = n
    res["msgs_per_cpu_s"] = seen["calls"] / res["cpu_s"] if res["cpu_s"] else 0.0
    res["msgs_per_s"] = seen["calls"] / res["wall_s"]
    res["cpu_share"] = res["cpu_s"] / res["wall_s"]
    res["late"] = res["driver"]["late"] + seen["late"]
    res["late_max_ms"] = max(res["driver"]["late_max_ms"], seen["late_max_ms"])
    return res


def _share(x):
    return "n/a" if x is None else "%.0f%%" % (100 * x)


def _describe(r):
    waited = None if r.get("waited_s") is None else r["waited_s"] / r["wall_s"]
    return ("%5d chargers: %5.0f msg/s, CPU %3.0f%% of a core (user %.2f s, system %.2f s), %5.0f msg per CPU-second; "
            "late (> %d ms): %d of %d (max %.0f ms; driver %d of %d actions, agent %d of %d messages); "
            "waited for a CPU %s of the time; CSMS CPU %s" % (
                r["n"], r["msgs_per_s"], 100 * r["cpu_share"], r["user_s"], r["sys_s"], r["msgs_per_cpu_s"], LATE_MS, r["late"],
                r["driver"]["actions"] + r["csms"]["checked"], r["late_max_ms"], r["driver"]["late"], r["driver"]["actions"],
                r["csms"]["late"], r["csms"]["checked"], _share(waited), _share(r["csms"]["cpu_share"])))


def passes(r):
    return r["late"] == 0 and r["booted"] >= r["n"] and r["cpu_share"] < 0.95


def _verdict(r):
    out = "  ok" if passes(r) else "  MISSED"
    waited = None if r.get("waited_s") is None else r["waited_s"] / r["wall_s"]
    if waited is not None and waited > 0.05:
        out += " (other processes held this core %.0f%% of the time: a lower bound)" % (100 * waited)
    return out


def main():
    csms = Proc(["--csms"])
    url = "ws://127.0.0.1:%d/ocpp" % csms.line()["port"]
    print("fast CSMS in its own process (raw asyncio WebSocket server, answers written directly, no validation)")
    from host_tools.emulator.fleet import TIMER_TICK_MS

    print("fleet journals: unsynced (no fsync per record); message log off; ClockAlignedDataInterval=0; "
          "MeterValueSampleInterval=%d s; a session every %.0f s per charger" % (SAMPLE_INTERVAL_S, SESSION_EVERY_S))
    print("our fleet's timers on a %g ms grid (--timer-tick): its timers run up to that late, which the late count "
          "below includes" % TIMER_TICK_MS)
    print("each window starts %.0f s after the last charger booted (steady state: the boot storm's backlog is not "
          "counted)" % SETTLE_S)
    try:
        ours = trial(csms, url, "ours", RATIO_CHARGERS, RATIO_WINDOW_S)
        pkg = trial(csms, url, "package", RATIO_CHARGERS, RATIO_WINDOW_S)
        print("\nmessages per CPU-second of the fleet process, %d chargers, %.0f s window:" % (RATIO_CHARGERS, RATIO_WINDOW_S))
        print("  ours (real agent, fleet model):     %s" % _describe(ours))
        print("  baseline (ocpp package ChargePoint): %s" % _describe(pkg))
        print("  mix ours:     %s" % json.dumps(ours["csms"]["by_action"], sort_keys=True))
        print("  mix baseline: %s" % json.dumps(pkg["csms"]["by_action"], sort_keys=True))
        ratio = ours["msgs_per_cpu_s"] / pkg["msgs_per_cpu_s"]
        print("  ratio ours/baseline: %.2fx (target >= 5x)%s" % (ratio, "" if ratio >= 5 else "  SHORT OF TARGET"))

        print("\nchargers one core sustains, a session every %.0f s each, late = more than %d ms after its time:" % (SESSION_EVERY_S, LATE_MS))
        best = None
        if os.environ.get("FLEET_SEARCH"):
            best = _search(csms, url)
        else:
            for n in QUICK_SIZES:
                r = trial(csms, url, "ours", n, WINDOW_S)
                print("  " + _describe(r) + _verdict(r))
                if passes(r):
                    best = r
                else:
                    break
            print("  (FLEET_SEARCH=1 for the full search)")
        if best is not None:
            print("  sustained: %d chargers per core (target about 5000)%s" % (best["n"], "" if best["n"] >= 5000 else "  SHORT OF TARGET"))
            if os.environ.get("FLEET_PROFILE"):
                _profile(csms, url, best["n"])
        else:
            print("  none of the sizes tried was sustained")
    finally:
        csms.close()


def _search(csms, url):
    """Double until a size misses, then bisect to within 5 %."""
    lo, hi = None, None
    n = 500
    while hi is None:
        r = trial(csms, url, "ours", n, WINDOW_S)
        print("  " + _describe(r) + _verdict(r))
        if passes(r):
            lo = r
            n *= 2
        else:
            hi = n
    low_n = lo["n"] if lo else 0
    while lo is not None and hi - low_n > max(50, low_n // 20):
        n = (low_n + hi) // 2
        r = trial(csms, url, "ours", n, WINDOW_S)
        print("  " + _describe(r) + _verdict(r))
        if passes(r):
            lo, low_n = r, n
        else:
            hi = n
    return lo


AREAS = (
    ("firmware/store/", "journal and queue (firmware/store)"),
    ("firmware/ocpp/", "OCPP core, RPC, validation (firmware/ocpp)"),
    ("firmware/net/", "WebSocket transport (firmware/net)"),
    ("firmware/", "agent, hardware glue, compat (firmware/*.py)"),
    ("host_tools/", "fleet model and simulated drivers (host_tools)"),
    ("asyncio/", "asyncio event loop and streams"),
    ("selectors.py", "asyncio event loop and streams"),
    ("json/", "json"),
    ("<method 'send'", "socket send and receive (system calls)"),
    ("<method 'recv'", "socket send and receive (system calls)"),
    ("<method", "C methods and builtins (files, dicts, bytes...)"),
    ("<built-in", "C methods and builtins (files, dicts, bytes...)"),
)


def profile_areas(path):
    """Own time per area of the code, from a cProfile dump: [(area, seconds)]."""
    import pstats

    st = pstats.Stats(path).stats
    out = {}
    idle = 0.0
    for (filename, _, name), (_, _, tottime, _, _) in st.items():
        if name == "<method 'poll' of 'select.epoll' objects>":
            idle += tottime  # waiting for sockets or timers: not work
            continue
        key = filename if filename != "~" else name
        area = "other Python"
        for prefix, label in AREAS:
            if prefix in key or key.startswith(prefix):
                area = label
                break
        out[area] = out.get(area, 0.0) + tottime
    return sorted(out.items(), key=lambda kv: -kv[1]), idle


def _profile(csms, url, n):
    import pstats

    path = os.path.join(tempfile.gettempdir(), "bench_fleet.prof")
    trial(csms, url, "ours", n, 10.0, profile=path)
    areas, idle = profile_areas(path)
    total = sum(t for _, t in areas)
    print("\ncProfile of the fleet process at %d chargers (10 s; profiling slows it about 2x), own time by area:" % n)
    for area, t in areas:
        print("  %5.1f%%  %s" % (100 * t / total, area))
    print("\ntop functions by own time:")
    pstats.Stats(path).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--csms"]:
        asyncio.run(_csms_main())
    elif sys.argv[1:2] == ["--fleet"]:
        _fleet_main(sys.argv[2:])
    else:
        main()
