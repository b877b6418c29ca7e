"""make soak: a fleet of emulated chargers through network faults, reconciled.

    python -m host_tools.soak --minutes 10 --chargers 200 --seed 1

One process runs N emulated chargers (the real agent on the fleet model,
host_tools/emulator) whose simulated drivers start and stop sessions all the
time, and the chaos proxy (host_tools/chaos_proxy.py) they all connect
through. The bench CSMS runs in a process of its own with random fault
injection, and is killed and started again on the same database during the
run. At the end the drivers finish their sessions, the faults stop, the fleet
drains its queues, and the CSMS ledger is reconciled with what every agent
sent and with every charger's simulated meter. Exit status 0 when every
check passes, 1 otherwise.

What the agents did is taken from hooks on each agent's transaction queue,
message log and hardware, written to a trace file as the run goes (so the
harness holds nothing in memory that grows with the run).
"""
import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import sys
import time
import traceback
import types

from host_tools.soak_audit import CSMS_KINDS, reconcile
from host_tools.emulator.fleet import Lateness

ID_TAG = "SOAK-TAG"
PREFIX = "SOAK-"

PROXY_FAULTS = {
    "probabilities": {"delay": 0.01, "reorder": 0.004, "drop": 0.003, "cut": 0.002, "reset": 0.002,
                      "halfopen": 0.001},
    "delay_ms": [50, 2500],
    "reorder_ms": [200, 8000],
    "halfopen_s": 60,
}
CSMS_FAULTS = {
    "probabilities": {"call_error": 0.02, "delay": 0.03, "no_answer": 0.01, "drop": 0.005, "malformed": 0.01},
    "codes": ["InternalError", "GenericError"],
    "delay_seconds": [0.2, 3.0],
    "process_probability": 0.5,
    "refuse_seconds": 5,
}

# Actions the CSMS keeps in its ledger (1.6).
LEDGER_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
# Agent events kept in the trace.
TRACED_EVENTS = ("connected", "disconnected", "connect_failed", "message_parked", "journal_problem",
                 "status_transition_unexpected")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m host_tools.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the session phase (10)")
    p.add_argument("--chargers", type=int, default=200, help="emulated chargers in this process (200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the drivers, the proxy and the CSMS faults")
    p.add_argument("--dir", default="build/soak", help="work directory: journals, trace, logs, database")
    p.add_argument("--session-every", type=float, default=30.0, help="mean seconds between a driver's sessions")
    p.add_argument("--sample-interval", type=int, default=10, help="MeterValueSampleInterval (s)")
    p.add_argument("--restarts", type=int, default=1, help="CSMS restarts during the run (at least 1)")
    p.add_argument("--restart-down", type=float, default=3.0, help="seconds the CSMS stays down")
    p.add_argument("--warmup", type=float, default=None, help="seconds before memory must be flat "
                   "(default: a fifth of the run, at most 120)")
    p.add_argument("--rss-every", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--rss-tolerance-mb", type=float, default=8.0, help="allowed RSS growth after warm-up (MB)")
    p.add_argument("--max-bin-share", type=float, default=0.35,
                   help="largest share of the reconnects after a restart allowed in one second")
    p.add_argument("--drain-timeout", type=float, default=150.0, help="seconds the fleet has to drain")
    p.add_argument("--progress-every", type=float, default=30.0, help="seconds between progress lines (0: none)")
    p.add_argument("--sync", action="store_true", help="fsync every journal record (default: unsynced)")
    p.add_argument("--proxy-faults", type=json.loads, default=None, metavar="JSON",
                   help="chaos proxy random mode (default: %s)" % json.dumps(PROXY_FAULTS["probabilities"]))
    p.add_argument("--csms-faults", type=json.loads, default=None, metavar="JSON",
                   help="bench CSMS random faults (default: %s)" % json.dumps(CSMS_FAULTS["probabilities"]))
    p.add_argument("--message-timeout", type=int, default=10, help="MessageTimeout (s)")
    p.add_argument("--attempts", type=int, default=10, help="TransactionMessageAttempts")
    p.add_argument("--retry-interval", type=int, default=2, help="TransactionMessageRetryInterval (s)")
    p.add_argument("--ping-interval", type=int, default=10, help="WebSocketPingInterval (s)")
    p.add_argument("--pong-timeout", type=float, default=10.0, help="seconds a ping may go unanswered")
    p.add_argument("--backoff-min", type=float, default=1.0)
    p.add_argument("--backoff-base", type=float, default=5.0)
    p.add_argument("--backoff-max", type=float, default=30.0)
    p.add_argument("--json", default=None, help="also write the result as JSON to this file")
    o = p.parse_args(argv)
    if o.chargers < 1 or o.minutes <= 0 or o.restarts < 1:
        p.error("--chargers, --minutes and --restarts must be positive")
    o.duration = o.minutes * 60.0
    if o.warmup is None:
        o.warmup = min(120.0, o.duration / 5)
    proxy = dict(PROXY_FAULTS)
    proxy.update(o.proxy_faults or {})
    o.proxy_faults = proxy
    csms = dict(CSMS_FAULTS)
    csms.update(o.csms_faults or {})
    csms["seed"] = o.seed
    o.csms_faults = csms
    return o


def rss_kb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _mallinfo():
    """glibc's mallinfo2(), or None elsewhere."""
    try:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                "keepcost")]

        fn = ctypes.CDLL(None).mallinfo2
        fn.restype = MallInfo2
        return fn
    except (OSError, AttributeError):
        return None


_MALLINFO = _mallinfo()


def c_heap_kb():
    """(bytes in use, bytes free but kept) of the C heap in KiB, or (None, None)."""
    if _MALLINFO is None:
        return None, None
    m = _MALLINFO()
    return m.uordblks // 1024, m.fordblks // 1024


# -- what the agents do, written down as it happens ---------------------------------------------------


class Trace:
    """One JSON list per line:
      ["q", id, t, seq, action, local_tx, payload]   a transaction message queued
      ["c", id, t, messageId, action]                 a CALL of a ledger action went on the wire
      ["s", id, t, seq, messageId]                    it was a try of queued message seq
      ["r", id, t, seq, outcome, transactionId]       its try ended: ok, error, timeout, lost, refused
      ["p", id, t, seq]                               it was given up (parked) after its last try
      ["h", id, t, relay_on, energy_wh]               the contactor switched (simulated meter register)
      ["e", id, t, event, data]                       agent events (connected, disconnected, ...)
      ["x", id, t, text]                              the agent's task ended with an exception
      ["f", id, t, final]                             the agent's state after the drain
      ["k", t, "down" | "up", n]                      the CSMS went down / came back
    """

    def __init__(self, path, clock):
        self.file = open(path, "w", encoding="utf-8", buffering=1 << 16)
        self.clock = clock
        self.calls = {}  # action -> CALLs the agents sent
        self.events = {}  # agent event name -> count

    def now(self):
        return round(self.clock(), 3)

    def write(self, rec):
        self.file.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def close(self):
        self.file.close()

    def out_for(self, ident):
        events = self.events

        def out(line):
            if not line.startswith('{"event":"'):
                return
            name = line[10:line.find('"', 10)]
            events[name] = events.get(name, 0) + 1
            if name in TRACED_EVENTS:
                data = json.loads(line)
                del data["event"]
                self.write(["e", ident, self.now(), name, data])

        return out

    def attach(self, ident, agent):
        """Hooks on the agent's queue and message log (host instrumentation;
        the agent's code is unchanged)."""
        from firmware.store.txqueue import PARKED

        q = agent.txq
        calls = self.calls
        write = self.write
        now = self.now
        last = [None]

        def log_frame(direction, mtype, msg_id, action, body, rtt_ms):
            if direction == "tx" and mtype == 2:
                last[0] = msg_id
                calls[action] = calls.get(action, 0) + 1
                if action in LEDGER_ACTIONS:
                    write(["c", ident, now(), msg_id, action])

        agent.cp.log_frame = log_frame
        enqueue, sent, on_result, on_error, on_timeout, on_disconnect = (
            q.enqueue, q.sent, q.on_result, q.on_error, q.on_timeout, q.on_disconnect)

        def q_enqueue(action, payload, local_tx, now_ms, pre=None, post=None):
            seq = enqueue(action, payload, local_tx, now_ms, pre, post)
            write(["q", ident, now(), seq, action, local_tx, payload])
            return seq

        def q_sent(seq, now_ms):
            sent(seq, now_ms)
            write(["s", ident, now(), seq, last[0]])

        def q_on_result(seq, payload, now_ms):
            out = on_result(seq, payload, now_ms)
            tid = payload.get("transactionId") if isinstance(payload, dict) else None
            write(["r", ident, now(), seq, "ok" if out is not None else "refused", tid])
            return out

        def failed(fn, outcome):
            def hook(seq, now_ms):
                out = fn(seq, now_ms)
                if out is not None:
                    write(["r", ident, now(), seq, outcome, None])
                    if out[0] == PARKED:
                        write(["p", ident, now(), seq])
                return out
            return hook

        def q_on_disconnect(now_ms):
            seq = q.in_flight
            on_disconnect(now_ms)
            if seq is not None:
                write(["r", ident, now(), seq, "lost", None])

        q.enqueue, q.sent, q.on_result = q_enqueue, q_sent, q_on_result
        q.on_error, q.on_timeout, q.on_disconnect = failed(on_error, "error"), failed(on_timeout, "timeout"), \
            q_on_disconnect


def metered_hardware_class():
    from host_tools.emulator.hardware import FleetHardware

    class MeteredHardware(FleetHardware):
        """The fleet model, writing its meter register at every contactor switch."""

        def __init__(self, trace, ident, power_w):
            FleetHardware.__init__(self, power_w=power_w)
            self.trace = trace
            self.ident = ident

        def relay(self, cid, on):
            self._integrate()
            self.trace.write(["h", self.ident, self.trace.now(), on, self.energy_wh])
            FleetHardware.relay(self, cid, on)

    return MeteredHardware


class Exceptions:
    """Counts exceptions the agents catch and print (firmware print_exception)
    and unhandled ones of the event loop; their tracebacks go to a file."""

    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8")
        self.printed = 0
        self.unhandled = 0

    def install(self, loop):
        import firmware.agent
        import firmware.compat as compat
        import firmware.hardware
        import firmware.net.manager
        import firmware.ocpp.rpc  # noqa: F401 (its print_exception is replaced below)

        original = compat.print_exception

        def print_exception(exc, file=None):
            self.printed += 1
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.file)
            self.file.flush()

        for name, mod in list(sys.modules.items()):
            if name.startswith("firmware") and getattr(mod, "print_exception", None) is original:
                mod.print_exception = print_exception
        loop.set_exception_handler(self._unhandled)

    def _unhandled(self, loop, context):
        self.unhandled += 1
        self.file.write("unhandled: %s\n" % context.get("message"))
        exc = context.get("exception")
        if exc is not None:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.file)
        self.file.flush()

    def close(self):
        self.file.close()


# -- the bench CSMS in its own process --------------------------------------------------------------


class CsmsProcess:
    def __init__(self, o, paths):
        self.o = o
        self.paths = paths
        self.proc = None
        self.port = 0
        self.err = open(paths["csms_log"], "ab")

    async def start(self, port=0):
        args = [sys.executable, "-m", "host_tools.csms", "--host", "127.0.0.1", "--port", str(port),
                "--db", self.paths["db"], "--id-tag", ID_TAG, "--no-rate-limit", "--call-timeout", "10",
                "--message-log", self.paths["csms_messages"], "--log-level", "INFO"]
        if self.o.csms_faults.get("probabilities"):
            args += ["--random-faults", json.dumps(self.o.csms_faults)]
        for attempt in range(20):
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdout=asyncio.subprocess.PIPE, stderr=self.err, cwd=_root())
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            m = re.search(rb"http://[^ ]+:(\d+)/api", line)
            if m:
                self.port = int(m.group(1))
                return self.port
            await self.proc.wait()  # the port was not free yet: try again
            await asyncio.sleep(0.5)
        raise RuntimeError("the bench CSMS did not start; see " + self.paths["csms_log"])

    async def kill(self):
        self.proc.kill()
        await self.proc.wait()

    async def stop(self):
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except asyncio.TimeoutError:
            await self.kill()
        self.err.close()

    async def api(self, method, path):
        """One HTTP request to the CSMS API; returns the status. Plain asyncio
        streams: an HTTP client library would add megabytes to the memory
        this process measures."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
                      % (method, path)).encode())
        status = int((await asyncio.wait_for(reader.readline(), 30)).split()[1])
        writer.close()
        return status


def _root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- the run -------------------------------------------------------------------------------------------


def _paths(o):
    d = o.dir
    return {
        "dir": d,
        "state": os.path.join(d, "state"),
        "trace": os.path.join(d, "trace.jsonl"),
        "db": os.path.join(d, "csms.sqlite"),
        "csms_messages": os.path.join(d, "csms-messages.jsonl"),
        "csms_log": os.path.join(d, "csms.log"),
        "proxy_log": os.path.join(d, "proxy-faults.jsonl"),
        "exceptions": os.path.join(d, "exceptions.txt"),
    }


def _settings(o, ident, state_dir, url):
    from host_tools.emulator import charger_settings

    ocpp = [
        ("MeterValueSampleInterval", o.sample_interval),
        ("TransactionMessageAttempts", o.attempts),
        ("TransactionMessageRetryInterval", o.retry_interval),
        ("MessageTimeout", o.message_timeout),
        ("WebSocketPingInterval", o.ping_interval),
        ("StopTxnSampledData", "Energy.Active.Import.Register"),
    ]
    args = types.SimpleNamespace(csms=url, no_sync=not o.sync, log_frames=False, ocpp=ocpp,
                                 backoff_min=o.backoff_min, backoff_base=o.backoff_base, backoff_max=o.backoff_max)
    s = charger_settings(args, ident, state_dir)
    s["pong_timeout_s"] = o.pong_timeout
    s["connect_timeout_s"] = 10
    return s


def drained(agent):
    from firmware.ocpp.v16 import chargepoint as cpm

    cp = agent.cp
    if not cp.online or cp.boot != cpm.BOOT_ACCEPTED or agent.txq.in_flight is not None:
        return False
    if agent.store.state.order:
        return False
    for c in cp.connectors[1:]:
        if c.tx is not None:
            return False
    return True


class Soak:
    """One soak run; run() returns the reconciled result (soak_audit.reconcile)
    with "checks" and "passed"."""

    def __init__(self, o, say=print):
        self.o = o
        self.say = say
        self.paths = _paths(o)
        self.t0 = time.monotonic()
        self.agents, self.hws, self.tasks, self.drivers = {}, {}, {}, []
        self.stop = asyncio.Event()
        self.sampling = asyncio.Event()
        self.dstats = Lateness()  # the drivers' schedule; .sessions counts them
        self.rss = []
        self.restarts = []
        self.marks = {}
        self.csms = self.proxy = self.trace = self.exceptions = None

    def clock(self):
        return time.monotonic() - self.t0

    async def run(self):
        self._fresh_dir()
        self.trace = Trace(self.paths["trace"], self.clock)
        self.exceptions = Exceptions(self.paths["exceptions"])
        self.exceptions.install(asyncio.get_running_loop())
        self.csms = CsmsProcess(self.o, self.paths)
        try:
            await self._start()
            helpers = [asyncio.ensure_future(self._sample()), asyncio.ensure_future(self._progress())]
            await self._sessions()
            await self._drain()
            self.sampling.set()
            await helpers[0]
            helpers[1].cancel()
            await self._stop_fleet()
        finally:
            for d in self.drivers:
                d.stop()
            for t in self.tasks.values():
                t.cancel()
            if self.proxy is not None:
                await self.proxy.stop()
            await self.csms.stop()
            self.trace.close()
            self.exceptions.close()
        m = reconcile(self.o, self.paths, self._meta())
        m["checks"] = checks(self.o, m)
        m["passed"] = all(ok for _, ok, _ in m["checks"])
        return m

    def _fresh_dir(self):
        # Only what an earlier soak left here is removed.
        paths = self.paths
        shutil.rmtree(paths["state"], ignore_errors=True)
        for key in ("trace", "db", "csms_messages", "csms_log", "proxy_log", "exceptions"):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(paths[key] + suffix):
                    os.remove(paths[key] + suffix)
        os.makedirs(paths["state"])

    async def _start(self):
        import random

        from host_tools.chaos_proxy import ChaosProxy
        from host_tools.emulator import run_charger
        from host_tools.emulator.fleet import session_plan
        from host_tools.emulator.fleetio import Driver, SharedTimers

        o, paths, say, trace = self.o, self.paths, self.say, self.trace
        await self.csms.start()
        self.proxy = ChaosProxy(("127.0.0.1", self.csms.port), seed=o.seed, random=o.proxy_faults,
                                log_path=paths["proxy_log"])
        await self.proxy.start()
        url = self.proxy.url("/ocpp")
        say("soak: %d chargers for %.1f min, seed %d, journals %s" % (
            o.chargers, o.minutes, o.seed,
            "synced (fsync per record)" if o.sync else "UNSYNCED (no fsync: a crash of this host could lose their "
            "newest records; the agents' logic is the same)"))
        say("csms: its own process (pid %d) on 127.0.0.1:%d, database %s, random faults %s" % (
            self.csms.proc.pid, self.csms.port, paths["db"], json.dumps(o.csms_faults, separators=(",", ":"))))
        say("proxy: %s -> 127.0.0.1:%d, random faults %s" % (
            url, self.csms.port, json.dumps(o.proxy_faults, separators=(",", ":"))))
        MeteredHardware = metered_hardware_class()
        agents, hws = self.agents, self.hws
        rng = random.Random(o.seed)
        timers = SharedTimers()  # the drivers' schedules, one loop timer for all
        for i in range(o.chargers):
            ident = "%s%04d" % (PREFIX, i + 1)
            settings = _settings(o, ident, os.path.join(paths["state"], ident), url)
            power = 7400.0 + rng.random() * 3600.0

            def make(ident=ident, power=power):
                hw = hws[ident] = MeteredHardware(trace, ident, power)
                return hw

            def on_agent(agent, ident=ident):
                agents[ident] = agent
                trace.attach(ident, agent)

            task = asyncio.ensure_future(run_charger(settings, make, out=trace.out_for(ident), on_agent=on_agent))
            task.add_done_callback(_task_end(trace, ident, self.stop))
            self.tasks[ident] = task
            self.drivers.append(Driver(timers, hws.get, ident, ID_TAG, o.session_every, random.Random(rng.random()),
                                       self.dstats, session_plan))

    async def _sessions(self):
        """Sessions for the whole run, with the CSMS restarts spread over it."""
        o, trace = self.o, self.trace
        for k in range(o.restarts):
            await asyncio.sleep(max(0.0, o.duration * (k + 1) / (o.restarts + 1) - self.clock()))
            down = trace.now()
            trace.write(["k", down, "down", k + 1])
            await self.csms.kill()
            await asyncio.sleep(o.restart_down)
            await self.csms.start(self.csms.port)
            up = trace.now()
            trace.write(["k", up, "up", k + 1])
            self.restarts.append((down, up))
            self.say("[%5.0f s] CSMS killed (SIGKILL) and started again after %.1f s (pid %d)" % (
                down, up - down, self.csms.proc.pid))
        await asyncio.sleep(max(0.0, o.duration - self.clock()))

    async def _drain(self):
        """Drivers end their sessions, the faults stop, the queues drain."""
        o, trace, agents = self.o, self.trace, self.agents
        self.stop.set()
        for d in self.drivers:
            d.stop()  # a session under way ends at once: tap, unplug
        self.marks["end_sessions"] = trace.now()
        self.proxy.faults_off()
        if await self.csms.api("DELETE", "/api/faults/random") != 200:
            self.say("could not switch the CSMS faults off")
        faults_off = self.marks["faults_off"] = trace.now()
        self.say("[%5.0f s] sessions ended; faults off; draining" % faults_off)
        deadline = self.clock() + o.drain_timeout
        while self.clock() < deadline:
            if len(agents) == o.chargers and all(drained(a) for a in agents.values()):
                break
            await asyncio.sleep(0.5)
        self.marks["drain_s"] = round(self.clock() - faults_off, 1)
        self.say("[%5.0f s] drain %s after %.1f s" % (
            self.clock(), "complete" if all(drained(a) for a in agents.values()) else "INCOMPLETE",
            self.marks["drain_s"]))

    async def _stop_fleet(self):
        trace = self.trace
        for ident, agent in self.agents.items():
            st = agent.store.state
            hw = self.hws[ident]
            hw._integrate()
            trace.write(["f", ident, trace.now(), {
                "queued": list(st.order), "parked": list(st.parked_seqs()), "open": list(st.open),
                "drained": drained(agent), "counters": agent.txq.counters, "energy": hw.energy_wh}])
        self.marks["stopped_at"] = trace.now()
        for agent in self.agents.values():
            agent.stop()
        await asyncio.wait(list(self.tasks.values()), timeout=30)

    async def _sample(self):
        while not self.sampling.is_set():
            # After a full collection: CPython 3.11's asyncio.wait_for leaves
            # reference cycles for the collector, which would otherwise show
            # as up to ~25 % more objects until its next full pass.
            gc.collect()
            self.rss.append((round(self.clock(), 1), rss_kb(), sys.getallocatedblocks()) + c_heap_kb())
            try:
                await asyncio.wait_for(self.sampling.wait(), self.o.rss_every)
            except asyncio.TimeoutError:
                pass

    async def _progress(self):
        o, agents = self.o, self.agents
        while o.progress_every > 0:
            await asyncio.sleep(o.progress_every)
            online = sum(1 for a in agents.values() if a.cp.online)
            queued = sum(len(a.store.state.order) for a in agents.values())
            self.say("[%5.0f s] sessions %d, online %d/%d, queued %d, CALLs %d, proxy faults %d, rss %.1f MB" % (
                self.clock(), self.dstats.sessions, online, o.chargers, queued, sum(self.trace.calls.values()),
                sum(self.proxy.counts.values()), rss_kb() / 1024.0))

    def _meta(self):
        o, trace, proxy, exc = self.o, self.trace, self.proxy, self.exceptions
        meta = {
            "chargers": o.chargers, "minutes": o.minutes, "seed": o.seed, "synced": o.sync,
            "sessions_driven": self.dstats.sessions, "restarts": self.restarts, "rss": self.rss,
            "proxy_counts": dict(proxy.counts), "proxy_stats": dict(proxy.stats),
            "calls": dict(trace.calls), "events": dict(trace.events),
            "exceptions_printed": exc.printed, "exceptions_unhandled": exc.unhandled,
        }
        meta.update(self.marks)
        return meta


async def run_soak(o, say=print):
    return await Soak(o, say).run()


def _task_end(trace, ident, stop):
    def done(task):
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            trace.write(["x", ident, trace.now(), "".join(traceback.format_exception(type(exc), exc,
                                                                                     exc.__traceback__))])
        elif not stop.is_set():
            trace.write(["x", ident, trace.now(), "run() returned before the end of the soak"])
    return done


def checks(o, m):
    n = m["result"]
    mem = m["memory"]
    flat = "peak_mb" in mem and mem["peak_mb"] - mem["at_warmup_mb"] <= o.rss_tolerance_mb
    spread = bool(m["reconnects"]) and all(
        r["largest_bin_share"] <= o.max_bin_share and r["reconnected"] == o.chargers
        for r in m["reconnects"])
    wanted = ["proxy " + k for k in m["proxy_counts"] if o.proxy_faults["probabilities"].get(k)]
    wanted += ["csms " + k for k in CSMS_KINDS if o.csms_faults["probabilities"].get(k)]
    if o.csms_faults["probabilities"].get("drop") and o.csms_faults.get("refuse_seconds"):
        wanted.append("csms refused")
    got = dict(("proxy " + k, v) for k, v in m["proxy_counts"].items())
    got.update(("csms " + k, v) for k, v in m["csms_faults"].items())
    missing = [k for k in wanted if not got.get(k)]
    return [
        ("lost transaction messages", n["lost"] == 0, n["lost"]),
        ("transaction messages in order", n["out_of_order"] == 0, "%d out of order" % n["out_of_order"]),
        ("wrong transactionIds", n["wrong_transaction_ids"] == 0, n["wrong_transaction_ids"]),
        ("duplicates only after a lost answer",
         n["unexplained_duplicates"] == 0 and n["resent_after_answer"] == 0 and n["unrecognised_duplicates"] == 0,
         "%d duplicates, unexplained %d, resent after an answer %d, not recognised by the CSMS %d" % (
             n["duplicates"], n["unexplained_duplicates"], n["resent_after_answer"], n["unrecognised_duplicates"])),
        ("crashed agents", not n["crashed_agents"] and m["exceptions_printed"] == 0 and m["exceptions_unhandled"] == 0,
         "%d (exceptions caught inside agents %d, unhandled %d)" % (
             len(n["crashed_agents"]), m["exceptions_printed"], m["exceptions_unhandled"])),
        ("drained, nothing queued or given up", not n["not_drained"] and n["queued_at_end"] == 0 and n["parked"] == 0
         and n["dropped_by_bound"] == 0,
         "not drained %d, queued %d, parked %d, dropped %d" % (len(n["not_drained"]), n["queued_at_end"], n["parked"],
                                                               n["dropped_by_bound"])),
        ("ledger = agents", n["phantom_rows"] == 0 and n["invalid_rows"] == 0,
         "phantom rows %d, invalid %d" % (n["phantom_rows"], n["invalid_rows"])),
        ("billing = simulated meters", n["billing_mismatches"] == 0 and n["meter_mismatches"] == 0
         and n["orphan_sessions"] == 0 and n["open_at_end"] == 0 and abs(n["outside_sessions_wh"]) < 1.0,
         "%d sessions: %d billing and %d meter mismatches, %d orphans, %d open" % (
             n["sessions_started"], n["billing_mismatches"], n["meter_mismatches"], n["orphan_sessions"],
             n["open_at_end"])),
        ("memory flat after warm-up", flat, "%s MB at %.0f s, peak %s MB, end %s MB (tolerance %.1f MB)" % (
            mem.get("at_warmup_mb"), mem["warmup_s"], mem.get("peak_mb"), mem.get("end_mb"), o.rss_tolerance_mb)),
        ("reconnects spread over the backoff window", spread, "; ".join(
            "restart %d: largest second %.0f%%" % (r["restart"], 100 * r["largest_bin_share"])
            for r in m["reconnects"])),
        ("faults of every kind injected", not missing, "missing: " + ", ".join(missing) if missing else "all"),
    ]


# -- report ---------------------------------------------------------------------------------------------


def report(m, o):
    n = m["result"]
    lines = []
    add = lines.append
    add("")
    add("== soak result")
    add("chargers             %d in one process, %.1f min of sessions, seed %d, journals %s" % (
        m["chargers"], m["minutes"], m["seed"], "synced" if m["synced"] else "unsynced"))
    add("sessions             %d started, %d stopped (%d driven)" % (
        n["sessions_started"], n["sessions_stopped"], m["sessions_driven"]))
    add("transaction messages %d queued (%s); %d tries on the wire" % (
        n["messages"], ", ".join("%s %d" % kv for kv in sorted(n["by_action"].items())), n["tries"]))
    add("CALLs sent           %d (%s)" % (sum(m["calls"].values()), ", ".join(
        "%s %d" % kv for kv in sorted(m["calls"].items()))))
    add("CSMS ledger          %d rows (%s); %d of them MeterValues sent outside the queue (clock-aligned "
        "readings of idle connectors)" % (n["ledger_rows"], ", ".join(
            "%s %d" % kv for kv in sorted(n["ledger_outcomes"].items())), n["outside_queue_rows"]))
    ps = m["proxy_stats"]
    add("proxy                %d connections, %d refused while the CSMS was down, %.1f MB up, %.1f MB down" % (
        ps["connections"], ps["upstream_failed"], ps["bytes_up"] / 1e6, ps["bytes_down"] / 1e6))
    add("faults injected      proxy: %s" % ", ".join("%s %d" % (k, v) for k, v in m["proxy_counts"].items()))
    add("                     csms:  %s" % ", ".join("%s %d" % (k, v) for k, v in m["csms_faults"].items()))
    add("                     csms restarts: %d (killed with SIGKILL, down %.1f s each)" % (
        len(m["restarts"]), o.restart_down))
    add("agent events         %s" % ", ".join("%s %d" % (k, m["events"].get(k, 0)) for k in (
        "connected", "disconnected", "connect_failed", "call_timeout", "call_error", "message_parked")))
    add("")
    add("lost transaction messages     %d" % n["lost"])
    add("out of order                  %d" % n["out_of_order"])
    add("wrong transactionIds          %d" % n["wrong_transaction_ids"])
    causes = n["duplicate_causes"]
    add("duplicates                    %d, each after a try whose answer the agent never got (%s); "
        "unexplained %d" % (n["duplicates"], ", ".join("%s %d" % (_CAUSES.get(k, k), v) for k, v in sorted(causes.items())),
                            n["unexplained_duplicates"] + n["resent_after_answer"] + n["unrecognised_duplicates"]))
    add("crashed agents                %d (exceptions caught inside agents %d, unhandled %d)" % (
        len(n["crashed_agents"]), m["exceptions_printed"], m["exceptions_unhandled"]))
    add("queued / parked at the end    %d / %d (drained %.1f s after the faults stopped)" % (
        n["queued_at_end"], n["parked"], m["drain_s"]))
    add("energy                        billed %.3f kWh, simulated meters %.3f kWh, largest session difference "
        "%.2f Wh, outside sessions %.3f Wh" % (n["billed_wh"] / 1000.0, n["metered_wh"] / 1000.0,
                                             n["max_meter_diff_wh"], n["outside_sessions_wh"]))
    unlisted = m["unlisted_transitions"]
    add("status changes outside C16 §4.9's table, as the CSMS saw them: %d%s" % (
        sum(unlisted.values()), " (%s; a connector's status is reported when a CALL may go, so a status that "
        "lasted less than the CALL ahead of it, or that passed while offline, is not sent)" % ", ".join(
            "%s %d" % (k.replace(">", " -> "), v) for k, v in sorted(unlisted.items(), key=lambda kv: -kv[1]))
        if unlisted else ""))
    mem = m["memory"]
    add("memory (RSS of this process)  %s MB at start, %s MB after warm-up (%.0f s), peak %s MB, end %s MB; "
        "growth %s MB (last half %s MB)" % (
            mem.get("first_mb"), mem.get("at_warmup_mb"), mem["warmup_s"], mem.get("peak_mb"), mem.get("end_mb"),
            mem.get("growth_mb"), mem.get("last_half_growth_mb")))
    add("  live objects: Python blocks %s after warm-up, peak %s, end %s; C heap in use %s MB after warm-up, "
        "%s MB at the end (free but kept by malloc: %s MB, then %s MB)" % (
            mem.get("blocks_at_warmup"), mem.get("blocks_peak"), mem.get("blocks_end"), mem.get("heap_at_warmup_mb"),
            mem.get("heap_end_mb"), mem.get("heap_free_at_warmup_mb"), mem.get("heap_free_end_mb")))
    add("  samples (s:MB, each after a full garbage collection)")
    samples = ["%.0f:%.1f" % (x[0], x[1] / 1024.0) for x in mem["samples"]]
    for i in range(0, len(samples), 12):
        add("    " + " ".join(samples[i:i + 12]))
    for r in m["reconnects"]:
        add("")
        add("reconnects after CSMS restart %d (killed at %.1f s, back %.1f s later): %d chargers connected again "
            "(%d were connected at the kill); first %s s, median %s s, p90 %s s, last %s s after the kill; "
            "largest second %d (%.0f%%)" % (
                r["restart"], r["down_at"], (r["up_at"] or r["down_at"]) - r["down_at"], r["reconnected"],
                r["connected_before"], r["first_s"], r["median_s"], r["p90_s"], r["last_s"], r["largest_bin"],
                100 * r["largest_bin_share"]))
        add("  backoff: retry n waits %.0f s + random(0 .. min(%.0f s * 2^n, %.0f s))" % (
            o.backoff_min, o.backoff_base, o.backoff_max - o.backoff_min))
        add("  s after kill  attempts  reconnected")
        for s, tries, ok in r["histogram"]:
            add("  %3d-%-3d       %6d    %6d  %s" % (s, s + 1, tries, ok, "#" * ok))
    add("")
    for name, ok, detail in m["checks"]:
        add("%-4s %-42s %s" % ("ok" if ok else "FAIL", name, detail))
    if n["problems"]:
        add("")
        add("first problems:")
        for p in n["problems"]:
            add("  " + p)
    add("")
    add("files: %s (trace.jsonl, proxy-faults.jsonl, csms-messages.jsonl, csms.log, csms.sqlite)" % m["paths"]["dir"])
    add("SOAK %s" % ("PASSED" if m["passed"] else "FAILED"))
    return "\n".join(lines)


_CAUSES = {"timeout": "no answer in time", "lost": "connection lost first", "none": "never answered"}


def main(argv=None):
    o = parse_args(sys.argv[1:] if argv is None else argv)
    if _root() not in sys.path:
        sys.path.insert(0, _root())
    m = asyncio.run(run_soak(o, say=lambda s: print(s, flush=True)))
    print(report(m, o), flush=True)
    if o.json:
        with open(o.json, "w", encoding="utf-8") as f:
            json.dump(dict(m, checks=[list(c) for c in m["checks"]]), f, indent=1)
    return 0 if m["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
