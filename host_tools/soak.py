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
CSMS_KINDS = ("call_error", "delay", "no_answer", "drop", "malformed", "refused")

# Ledger outcomes of a transaction message the CSMS processed (storage.OUTCOMES).
PROCESSED = frozenset(("started", "duplicate_start", "stopped", "duplicate_stop", "conflicting_stop",
                       "stop_unknown", "stop_minus_one", "meter_values", "duplicate"))
DUPLICATE_OUTCOMES = frozenset(("duplicate_start", "duplicate_stop", "duplicate"))
# meterStart and meterStop are whole Wh of a register the meter shows to 0.1 Wh:
# each end may be off by 0.55 Wh from the simulated meter's exact energy.
METER_TOLERANCE_WH = 1.1
# Actions the CSMS keeps in its ledger (1.6).
LEDGER_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
# Agent events kept in the trace.
TRACED_EVENTS = ("connected", "disconnected", "connect_failed", "message_parked", "journal_problem")


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


# -- what the agents do, written down as it happens ---------------------------------------------------


class Trace:
    """One JSON list per line:
      ["q", id, t, seq, action, local_tx, payload]   a transaction message queued
      ["c", id, t, messageId, action]                 a CALL of a ledger action went on the wire
      ["s", id, t, seq, messageId]                    it was a try of queued message seq
      ["r", id, t, seq, outcome, transactionId]       its try ended: ok, error, timeout, lost, refused
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


async def run_soak(o, say=print):
    import random

    from host_tools.chaos_proxy import ChaosProxy
    from host_tools.emulator import run_charger
    from host_tools.emulator.fleet import drive_sessions

    paths = _paths(o)
    shutil.rmtree(paths["dir"], ignore_errors=True)
    os.makedirs(paths["state"])
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()

    def clock():
        return time.monotonic() - t0

    trace = Trace(paths["trace"], clock)
    exceptions = Exceptions(paths["exceptions"])
    exceptions.install(loop)
    csms = CsmsProcess(o, paths)
    await csms.start()
    proxy = ChaosProxy(("127.0.0.1", csms.port), seed=o.seed, random=o.proxy_faults, log_path=paths["proxy_log"])
    await proxy.start()
    url = proxy.url("/ocpp")
    say("soak: %d chargers for %.1f min, seed %d, journals %s" % (
        o.chargers, o.minutes, o.seed,
        "synced (fsync per record)" if o.sync else "UNSYNCED (no fsync: a crash of this host could lose their newest "
        "records; the agents' logic is the same)"))
    say("csms: its own process (pid %d) on 127.0.0.1:%d, database %s, random faults %s" % (
        csms.proc.pid, csms.port, paths["db"], json.dumps(o.csms_faults, separators=(",", ":"))))
    say("proxy: %s -> 127.0.0.1:%d, random faults %s" % (
        url, csms.port, json.dumps(o.proxy_faults, separators=(",", ":"))))

    MeteredHardware = metered_hardware_class()
    agents, hws, tasks, drivers = {}, {}, {}, []
    stop = asyncio.Event()
    dstats = {"sessions": 0}
    rng = random.Random(o.seed)
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
        task.add_done_callback(_task_end(trace, ident, stop))
        tasks[ident] = task
        drivers.append(asyncio.ensure_future(drive_sessions(
            hws.get, ident, ID_TAG, o.session_every, random.Random(rng.random()), dstats, stop)))

    rss = []
    sampling = asyncio.Event()

    async def sample():
        while not sampling.is_set():
            # After a full collection: CPython 3.11's asyncio.wait_for leaves
            # reference cycles for the collector, which would otherwise show
            # as up to ~25 % more objects until its next full pass.
            gc.collect()
            rss.append((round(clock(), 1), rss_kb(), sys.getallocatedblocks()))
            try:
                await asyncio.wait_for(sampling.wait(), o.rss_every)
            except asyncio.TimeoutError:
                pass

    async def progress():
        while o.progress_every > 0:
            await asyncio.sleep(o.progress_every)
            online = sum(1 for a in agents.values() if a.cp.online)
            queued = sum(len(a.store.state.order) for a in agents.values())
            say("[%5.0f s] sessions %d, online %d/%d, queued %d, CALLs %d, proxy faults %d, rss %.1f MB" % (
                clock(), dstats["sessions"], online, o.chargers, queued, sum(trace.calls.values()),
                sum(proxy.counts.values()), rss_kb() / 1024.0))

    sampler = asyncio.ensure_future(sample())
    reporter = asyncio.ensure_future(progress())
    restarts = []
    for k in range(o.restarts):
        at = o.duration * (k + 1) / (o.restarts + 1)
        await asyncio.sleep(max(0.0, at - clock()))
        down = trace.now()
        trace.write(["k", down, "down", k + 1])
        await csms.kill()
        await asyncio.sleep(o.restart_down)
        await csms.start(csms.port)
        up = trace.now()
        trace.write(["k", up, "up", k + 1])
        restarts.append((down, up))
        say("[%5.0f s] CSMS killed (SIGKILL) and started again after %.1f s (pid %d)" % (
            down, up - down, csms.proc.pid))
    await asyncio.sleep(max(0.0, o.duration - clock()))

    # The end: drivers finish their sessions, faults stop, queues drain.
    stop.set()
    end_sessions = trace.now()
    await asyncio.wait(drivers, timeout=o.session_every + 30)
    proxy.faults_off()
    if await csms.api("DELETE", "/api/faults/random") != 200:
        say("could not switch the CSMS faults off")
    faults_off = trace.now()
    say("[%5.0f s] sessions ended; faults off; draining" % faults_off)
    deadline = clock() + o.drain_timeout
    while clock() < deadline:
        if len(agents) == o.chargers and all(drained(a) for a in agents.values()):
            break
        await asyncio.sleep(0.5)
    drain_s = round(clock() - faults_off, 1)
    say("[%5.0f s] drain %s after %.1f s" % (
        clock(), "complete" if all(drained(a) for a in agents.values()) else "INCOMPLETE", drain_s))
    sampling.set()
    await sampler
    reporter.cancel()
    for ident, agent in agents.items():
        st = agent.store.state
        hw = hws[ident]
        hw._integrate()
        trace.write(["f", ident, trace.now(), {
            "queued": list(st.order), "parked": list(st.parked_seqs()), "open": list(st.open),
            "drained": drained(agent), "counters": agent.txq.counters, "energy": hw.energy_wh}])
    stop_at = trace.now()
    for agent in agents.values():
        agent.stop()
    await asyncio.wait(list(tasks.values()), timeout=30)
    await proxy.stop()
    await csms.stop()
    trace.close()
    exceptions.close()
    meta = {
        "chargers": o.chargers, "minutes": o.minutes, "seed": o.seed, "synced": o.sync,
        "sessions_driven": dstats["sessions"], "restarts": restarts, "end_sessions": end_sessions,
        "faults_off": faults_off, "drain_s": drain_s, "stopped_at": stop_at, "rss": rss,
        "proxy_counts": dict(proxy.counts), "proxy_stats": dict(proxy.stats),
        "calls": dict(trace.calls), "events": dict(trace.events),
        "exceptions_printed": exceptions.printed, "exceptions_unhandled": exceptions.unhandled,
        "ended_early": sorted(i for i, t in tasks.items() if t.done() and not t.cancelled()
                              and t.exception() is not None),
    }
    return reconcile(o, paths, meta)


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


# -- reconciliation ---------------------------------------------------------------------------------------


class Msg:
    __slots__ = ("seq", "action", "local", "payload", "ids", "results", "answered", "tid", "rows")

    def __init__(self, seq, action, local, payload):
        self.seq = seq
        self.action = action
        self.local = local
        self.payload = payload
        self.ids = []
        self.results = []
        self.answered = None
        self.tid = None
        self.rows = []


class Charger:
    def __init__(self, ident):
        self.ident = ident
        self.msgs = {}
        self.by_id = {}
        self.calls = set()  # messageIds of every ledger-action CALL
        self.start_of = {}  # local_tx -> seq of its StartTransaction
        self.stop_of = {}
        self.energy = {}  # local_tx -> [register at relay close, register at relay open]
        self.last_on = None
        self.stopping = None
        self.events = []  # (t, name)
        self.final = None
        self.crash = None


def read_trace(path):
    chargers = {}
    marks = []

    def ch(ident):
        c = chargers.get(ident)
        if c is None:
            c = chargers[ident] = Charger(ident)
        return c

    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            kind = r[0]
            if kind == "k":
                marks.append(r)
                continue
            c = ch(r[1])
            if kind == "q":
                m = c.msgs[r[3]] = Msg(r[3], r[4], r[5], r[6])
                if m.action == "StartTransaction":
                    c.start_of[m.local] = m.seq
                    c.energy[m.local] = [c.last_on, None]
                elif m.action == "StopTransaction":
                    c.stop_of[m.local] = m.seq
                    c.stopping = m.local
            elif kind == "c":
                c.calls.add(r[3])
            elif kind == "s":
                m = c.msgs[r[3]]
                m.ids.append(r[4])
                c.by_id[r[4]] = m
            elif kind == "r":
                m = c.msgs[r[3]]
                m.results.append(r[4])
                if r[4] == "ok":
                    m.answered = m.ids[-1]
                    m.tid = r[5]
            elif kind == "h":
                if r[3]:
                    c.last_on = r[4]
                elif c.stopping is not None:
                    c.energy[c.stopping][1] = r[4]
                    c.stopping = None
            elif kind == "e":
                c.events.append((r[2], r[3]))
            elif kind == "f":
                c.final = r[3]
            elif kind == "x":
                c.crash = r[3]
    return chargers, marks


def csms_faults(paths):
    counts = dict((k, 0) for k in CSMS_KINDS)
    try:
        with open(paths["csms_messages"], encoding="utf-8") as f:
            for line in f:
                if '"fault"' not in line and '"DROP"' not in line:
                    continue
                r = json.loads(line)
                t, fault = r.get("type"), r.get("fault")
                if t == "DROP":
                    counts["drop"] += 1
                elif t == "MALFORMED" and r.get("dir") == "out":
                    counts["malformed"] += 1
                elif fault == "call_error" and t == "CALLERROR":
                    counts["call_error"] += 1
                elif fault == "delay" and r.get("dir") == "out":
                    counts["delay"] += 1
                elif fault == "no_answer":
                    counts["no_answer"] += 1
    except FileNotFoundError:
        pass
    with open(paths["csms_log"], "rb") as f:
        counts["refused"] = f.read().count(b"handshake refused with")
    return counts


def _percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))]


def reconnects(chargers, marks, o, end):
    """For every CSMS restart: when each charger connected again (s after the kill)."""
    downs = [(m[1], m[3]) for m in marks if m[2] == "down"]
    ups = dict((m[3], m[1]) for m in marks if m[2] == "up")
    out = []
    for i, (down, n) in enumerate(downs):
        horizon = downs[i + 1][0] if i + 1 < len(downs) else end
        delays, attempts, was_connected = [], [], 0
        for c in chargers.values():
            online = False
            for t, name in c.events:
                if t > down:
                    break
                if name == "connected":
                    online = True
                elif name == "disconnected":
                    online = False
            was_connected += online
            for t, name in c.events:
                if down < t < horizon and name in ("connected", "connect_failed"):
                    attempts.append(t - down)
                    if name == "connected":
                        delays.append(t - down)
                        break
        bins = {}
        for d in delays:
            bins[int(d)] = bins.get(int(d), 0) + 1
        tries = {}
        for d in attempts:
            tries[int(d)] = tries.get(int(d), 0) + 1
        largest = max(bins.values()) if bins else 0
        out.append({
            "restart": n, "down_at": down, "up_at": ups.get(n), "connected_before": was_connected,
            "reconnected": len(delays), "first_s": _r(min(delays) if delays else None),
            "median_s": _r(_percentile(delays, 0.5)), "p90_s": _r(_percentile(delays, 0.9)),
            "last_s": _r(max(delays) if delays else None),
            "largest_bin": largest, "largest_bin_share": round(largest / len(delays), 3) if delays else 1.0,
            "histogram": [[s, tries.get(s, 0), bins.get(s, 0)] for s in range(0, max(list(bins) + list(tries) + [0]) + 1)],
        })
    return out


def _r(x):
    return None if x is None else round(x, 2)


def memory(rss, warmup):
    """RSS (and Python's allocated blocks) sampled after warm-up: where it
    started, its peak, its end, and its growth over the last half."""
    post = [x for x in rss if x[0] >= warmup]
    if len(post) < 2:
        return {"samples": rss, "warmup_s": warmup}
    mb = lambda kb: round(kb / 1024.0, 1)  # noqa: E731
    half = post[len(post) // 2]
    return {
        "samples": rss, "warmup_s": warmup, "first_mb": mb(rss[0][1]), "at_warmup_mb": mb(post[0][1]),
        "peak_mb": mb(max(x[1] for x in post)), "end_mb": mb(post[-1][1]),
        "growth_mb": mb(post[-1][1] - post[0][1]), "last_half_growth_mb": mb(post[-1][1] - half[1]),
        "blocks_at_warmup": post[0][2], "blocks_peak": max(x[2] for x in post), "blocks_end": post[-1][2],
    }


def reconcile(o, paths, meta):
    from host_tools.csms.storage import SqliteStorage

    chargers, marks = read_trace(paths["trace"])
    st = SqliteStorage(paths["db"])
    rows = st.ledger(limit=1 << 40)
    txs = dict((t["id"], t) for t in st.list_transactions(limit=1 << 40))
    st.close()

    n = {
        "messages": 0, "by_action": {}, "tries": 0, "ledger_rows": len(rows), "ledger_outcomes": {},
        "lost": 0, "queued_at_end": 0, "parked": 0, "dropped_by_bound": 0, "out_of_order": 0,
        "wrong_transaction_ids": 0, "duplicates": 0, "duplicate_causes": {}, "unexplained_duplicates": 0,
        "resent_after_answer": 0, "unrecognised_duplicates": 0, "phantom_rows": 0, "outside_queue_rows": 0, "invalid_rows": 0,
        "fault_rows": 0, "sessions_started": 0, "sessions_stopped": 0, "billing_mismatches": 0,
        "meter_mismatches": 0, "max_meter_diff_wh": 0.0, "billed_wh": 0, "metered_wh": 0.0,
        "outside_sessions_wh": 0.0, "orphan_sessions": 0, "open_at_end": 0, "not_drained": [],
        "crashed_agents": [],
    }
    problems = []  # first few, for the report

    def problem(text):
        if len(problems) < 20:
            problems.append(text)

    for r in rows:
        n["ledger_outcomes"][r["outcome"]] = n["ledger_outcomes"].get(r["outcome"], 0) + 1
    ledger = {}
    for r in rows:
        ledger.setdefault(r["charger_id"], []).append(r)
    orphans = {}
    for t in txs.values():
        if t["orphan"]:
            orphans[t["charger_id"]] = orphans.get(t["charger_id"], 0) + 1
        if t["status"] != "stopped":
            n["open_at_end"] += 1

    for ident in sorted(chargers):
        c = chargers[ident]
        if c.crash is not None:
            n["crashed_agents"].append(ident)
            problem("%s: agent ended: %s" % (ident, c.crash.strip().splitlines()[-1]))
        final = c.final or {"queued": [], "parked": [], "drained": False, "counters": {}, "energy": 0.0}
        if not final["drained"]:
            n["not_drained"].append(ident)
        queued, parked = set(final["queued"]), set(final["parked"])
        n["dropped_by_bound"] += final["counters"].get("dropped", 0)
        n["orphan_sessions"] += orphans.get(ident, 0)
        top = -1
        for r in ledger.get(ident, ()):
            m = c.by_id.get(r["message_id"])
            if m is None and r["message_id"] in c.calls:
                # Sent outside the queue: clock-aligned readings of an idle
                # connector (C16 §4.7), not transaction messages.
                n["outside_queue_rows"] += 1
                continue
            if m is None:
                n["phantom_rows"] += 1
                problem("%s: ledger row %d (%s) was never sent by the agent" % (ident, r["seq"], r["action"]))
                continue
            if r["outcome"] not in PROCESSED:
                n["invalid_rows" if r["outcome"] == "invalid" else "fault_rows"] += 1
                continue
            if not m.rows:
                if m.seq < top:
                    n["out_of_order"] += 1
                    problem("%s: message %d reached the CSMS after message %d" % (ident, m.seq, top))
                top = max(top, m.seq)
            m.rows.append(r)
        tids = {}
        for seq in sorted(c.msgs):
            m = c.msgs[seq]
            n["messages"] += 1
            n["by_action"][m.action] = n["by_action"].get(m.action, 0) + 1
            n["tries"] += len(m.ids)
            if "ok" in m.results and m.results.index("ok") != len(m.results) - 1:
                n["resent_after_answer"] += 1
            if not m.rows:
                if seq in queued:
                    n["queued_at_end"] += 1
                elif seq in parked:
                    n["parked"] += 1
                else:
                    n["lost"] += 1
                    problem("%s: %s %d lost (tries: %s)" % (ident, m.action, seq, ", ".join(m.results) or "none"))
                continue
            ids = [r["message_id"] for r in m.rows]
            extra = len(m.rows) - 1
            n["duplicates"] += extra
            if len(set(ids)) != len(ids):
                n["unexplained_duplicates"] += len(ids) - len(set(ids))
                problem("%s: one frame of message %d was processed twice" % (ident, seq))
            if m.answered is not None and m.answered not in ids:
                n["unexplained_duplicates"] += 1
                problem("%s: message %d answered but its answered try is not in the ledger" % (ident, seq))
            # The duplicates: the processed tries other than the answered one
            # (all but one when none was answered). Each must be a try whose
            # answer the agent never got.
            others = [r for r in m.rows if r["message_id"] != m.answered]
            if m.answered is None:
                others = others[:-1]
            for r in others:
                i = m.ids.index(r["message_id"])
                cause = m.results[i] if i < len(m.results) else "none"
                n["duplicate_causes"][cause] = n["duplicate_causes"].get(cause, 0) + 1
                if cause in ("error", "refused", "ok"):
                    n["unexplained_duplicates"] += 1
                    problem("%s: message %d processed although its try ended %s" % (ident, seq, cause))
            for r in m.rows[1:]:
                if r["outcome"] not in DUPLICATE_OUTCOMES:
                    n["unrecognised_duplicates"] += 1
                    problem("%s: repeat of message %d stored as %s" % (ident, seq, r["outcome"]))
            first = m.rows[0]
            if m.action == "StartTransaction":
                tid = first["transaction_id"]
                tids[m.local] = tid
                bad = first["outcome"] != "started" or (m.tid is not None and m.tid != tid)
                bad = bad or any(r["transaction_id"] != tid for r in m.rows)
                if bad:
                    n["wrong_transaction_ids"] += 1
                    problem("%s: StartTransaction %d: CSMS id %s, agent learned %s" % (ident, seq, tid, m.tid))
            elif m.local is not None:
                want = tids.get(m.local, -1 if m.local in c.start_of and c.start_of[m.local] in parked else None)
                for r in m.rows:
                    if r["payload"].get("transactionId") != want:
                        n["wrong_transaction_ids"] += 1
                        problem("%s: %s %d carried transactionId %s, its session is %s" % (
                            ident, m.action, seq, r["payload"].get("transactionId"), want))
                if m.action == "StopTransaction" and (first["outcome"] != "stopped" or first["transaction_id"] != want):
                    n["wrong_transaction_ids"] += 1
                    problem("%s: StopTransaction %d closed %s (%s)" % (ident, seq, first["transaction_id"],
                                                                         first["outcome"]))
        # Billing against the simulated meter.
        delivered = 0.0
        for local, sseq in c.start_of.items():
            n["sessions_started"] += 1
            e_close, e_open = c.energy.get(local, [None, None])
            stop_seq = c.stop_of.get(local)
            if stop_seq is None:
                problem("%s: session %d was never stopped" % (ident, local))
                n["billing_mismatches"] += 1
                continue
            n["sessions_stopped"] += 1
            start_p, stop_p = c.msgs[sseq].payload, c.msgs[stop_seq].payload
            tx = txs.get(tids.get(local))
            if tx is None or tx["meter_start"] != start_p["meterStart"] or tx["meter_stop"] != stop_p["meterStop"] \
                    or tx["status"] != "stopped":
                n["billing_mismatches"] += 1
                problem("%s: session %d: CSMS %s, agent %s..%s" % (
                    ident, local, None if tx is None else (tx["meter_start"], tx["meter_stop"], tx["status"]),
                    start_p["meterStart"], stop_p["meterStop"]))
                continue
            billed = tx["meter_stop"] - tx["meter_start"]
            n["billed_wh"] += billed
            if e_close is None or e_open is None:
                n["meter_mismatches"] += 1
                continue
            metered = e_open - e_close
            delivered += metered
            n["metered_wh"] += metered
            diff = abs(billed - metered)
            n["max_meter_diff_wh"] = max(n["max_meter_diff_wh"], round(diff, 3))
            if diff > METER_TOLERANCE_WH:
                n["meter_mismatches"] += 1
                problem("%s: session %d billed %d Wh, meter delivered %.1f Wh" % (ident, local, billed, metered))
        n["outside_sessions_wh"] += final["energy"] - delivered
    n["metered_wh"] = round(n["metered_wh"], 1)
    n["outside_sessions_wh"] = round(n["outside_sessions_wh"], 3)
    n["problems"] = problems
    meta["csms_faults"] = csms_faults(paths)
    meta["reconnects"] = reconnects(chargers, marks, o, meta["stopped_at"])
    meta["memory"] = memory(meta.pop("rss"), o.warmup)
    meta["result"] = n
    meta["checks"] = checks(o, meta)
    meta["passed"] = all(ok for _, ok, _ in meta["checks"])
    meta["paths"] = paths
    return meta


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
    mem = m["memory"]
    add("memory (RSS of this process)  %s MB at start, %s MB after warm-up (%.0f s), peak %s MB, end %s MB; "
        "growth %s MB (last half %s MB); Python blocks %s after warm-up, peak %s, end %s" % (
            mem.get("first_mb"), mem.get("at_warmup_mb"), mem["warmup_s"], mem.get("peak_mb"), mem.get("end_mb"),
            mem.get("growth_mb"), mem.get("last_half_growth_mb"), mem.get("blocks_at_warmup"),
            mem.get("blocks_peak"), mem.get("blocks_end")))
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
