"""Helpers for the agent's integration tests: the real agent (emulator) on a
simulated board against a CSMS written with the `ocpp` package, or against
the bench CSMS; its bench console over TCP; waiting on frames and events.

Nothing here sleeps for timing: every wait is for a condition (a frame, an
event, a record), bounded by a timeout.
"""
import asyncio
import contextlib
import datetime
import itertools
import json
import os
import time

from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as PackageCp
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from host_tools.bench import BenchConsole
from host_tools.emulator import ConsoleHub, run_charger

WAIT = 8.0  # the longest any condition is waited for

# Settings that keep a test fast: quick reconnects, no fsync (durability has
# its own tests), no message log on stdout.
FAST = {
    "backoff_min_s": 0.05,
    "backoff_base_s": 0.1,
    "backoff_max_s": 0.3,
    "backoff_reset_s": 1,
    "connect_timeout_s": 2,
    "sync": False,
    "log_frames": False,
}


class Changes:
    """A list that wakes its waiters when it grows (appended to from the loop)."""

    def __init__(self):
        self.items = []
        self._waiters = set()

    def append(self, item):
        self.items.append(item)
        for ev in self._waiters:
            ev.set()

    async def until(self, predicate, timeout=WAIT, what="condition"):
        """predicate()'s value once it is true, checked after every append."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ev = asyncio.Event()
        self._waiters.add(ev)
        try:
            while True:
                got = predicate()
                if got:
                    return got
                left = deadline - loop.time()
                if left <= 0:
                    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), left)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._waiters.discard(ev)


def utc_iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def parse_iso(text):
    return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


# ---- a CSMS written directly with the ocpp package -----------------------------------


class Frame:
    """One frame on the wire as the CSMS saw it."""

    __slots__ = ("t", "dir", "msg")

    def __init__(self, t, direction, msg):
        self.t = t  # time.monotonic() when it passed
        self.dir = direction  # "in": from the charger; "out": to it
        self.msg = msg  # parsed JSON array

    @property
    def kind(self):
        return self.msg[0]

    @property
    def action(self):
        return self.msg[2] if self.msg[0] == 2 else None

    @property
    def payload(self):
        return self.msg[3] if self.msg[0] == 2 else self.msg[2]

    def __repr__(self):
        return "%.3f %s %s" % (self.t, self.dir, json.dumps(self.msg)[:200])


class _Wire:
    """The websockets connection as the ocpp package sees it, recording frames."""

    def __init__(self, ws, csms):
        self.ws = ws
        self.csms = csms

    async def recv(self):
        text = await self.ws.recv()
        self.csms.frames.append(Frame(time.monotonic(), "in", json.loads(text)))
        return text

    async def send(self, text):
        self.csms.frames.append(Frame(time.monotonic(), "out", json.loads(text)))
        await self.ws.send(text)


class CentralSystem(PackageCp):
    """The central system side of one connection (ocpp.v16.ChargePoint).

    Answers are driven by the owning PeerCsms: boot answers in turn, id tag
    statuses, transaction ids, CALLERRORs on demand."""

    def __init__(self, cp_id, wire, csms):
        PackageCp.__init__(self, cp_id, wire, response_timeout=WAIT)
        self.csms = csms

    def _fail(self, action):
        n = self.csms.fail.get(action, 0)
        if n:
            self.csms.fail[action] = n - 1
            raise InternalError(description="injected by the test CSMS")

    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor, charge_point_model, **_):
        self._fail("BootNotification")
        if self.csms.boot_gate is not None:
            await self.csms.boot_gate.wait()
        answers = self.csms.boot_answers
        status, interval = answers.pop(0) if len(answers) > 1 else answers[0]
        return call_result.BootNotification(current_time=self.csms.now_iso(), interval=interval, status=status)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_):
        self._fail("Heartbeat")
        return call_result.Heartbeat(current_time=self.csms.now_iso())

    @on(Action.status_notification)
    def on_status(self, connector_id, error_code, status, **_):
        self._fail("StatusNotification")
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag, **_):
        self._fail("Authorize")
        return call_result.Authorize(id_tag_info=self.csms.id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start(self, connector_id, id_tag, meter_start, timestamp, **_):
        self._fail("StartTransaction")
        info = self.csms.id_tag_info(id_tag, self.csms.start_status)
        return call_result.StartTransaction(transaction_id=next(self.csms.tx_ids), id_tag_info=info)

    @on(Action.stop_transaction)
    def on_stop(self, meter_stop, timestamp, transaction_id, id_tag=None, **_):
        self._fail("StopTransaction")
        info = self.csms.id_tag_info(id_tag) if id_tag else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.meter_values)
    def on_meter_values(self, connector_id, meter_value, **_):
        self._fail("MeterValues")
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id, **_):
        return call_result.DataTransfer(status="UnknownVendorId")


class PeerCsms:
    """A 1.6 central system on the `ocpp` package behind a `websockets` server.

    frames: every frame in both directions (Frame), across reconnections.
    boot_answers: [(status, interval)], used in turn; the last one repeats.
    id_tags: {idTag: status} (others are Invalid); start_status overrides
    the status StartTransaction.conf gives. fail[action] = n: answer the next
    n CALLs of that action with a CALLERROR InternalError. refuse: answer
    handshakes with 503 (the charger stays offline). clock_offset_s: the
    CSMS clock's distance from this host's."""

    def __init__(self, boot_answers=(("Accepted", 300),), id_tags=None):
        self.frames = Changes()
        self.boot_answers = list(boot_answers)
        self.id_tags = dict(id_tags or {})
        self.start_status = None
        self.fail = {}
        self.refuse = False
        self.clock_offset_s = 0.0
        self.boot_gate = None  # an asyncio.Event the BootNotification answer waits for
        self.tx_ids = itertools.count(101)
        self.connections = {}  # identity -> CentralSystem (the newest)
        self.connected = Changes()
        self.server = None
        self._tasks = []
        self._ids = itertools.count(1)

    # -- server -----------------------------------------------------------------
    async def start(self):
        from websockets.asyncio.server import serve

        self.server = await serve(self._serve, "127.0.0.1", 0, subprotocols=["ocpp1.6"],
                                  process_request=self._process_request)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "ws://127.0.0.1:%d/ocpp" % self.port

    def _process_request(self, connection, request):
        if self.refuse:
            return connection.respond(503, "Refused by the test\n")
        return None

    async def _serve(self, ws):
        cp_id = ws.request.path.rsplit("/", 1)[-1]
        cs = CentralSystem(cp_id, _Wire(ws, self), self)
        self.connections[cp_id] = cs
        self.connected.append((time.monotonic(), cp_id))
        try:
            await cs.start()
        except Exception:
            pass  # the connection closed

    async def stop(self):
        for t in self._tasks:
            t.cancel()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def drop(self, cp_id="CP1", refuse=True):
        """Close the charger's connection; with refuse, keep it offline."""
        self.refuse = refuse
        cs = self.connections.get(cp_id)
        if cs is not None:
            await cs._connection.ws.close()

    # -- answers -----------------------------------------------------------------
    def now_iso(self):
        t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.clock_offset_s)
        return utc_iso(t)

    def id_tag_info(self, id_tag, status=None):
        return {"status": status or self.id_tags.get(id_tag, "Invalid")}

    # -- what the charger sent ------------------------------------------------------
    def calls(self, action=None, since=0):
        """CALL frames the charger sent (optionally of one action), from index since."""
        return [f for f in self.frames.items[since:] if f.dir == "in" and f.kind == 2 and (action is None or f.action == action)]

    def mark(self):
        """An index into frames: wait for what comes after it."""
        return len(self.frames.items)

    async def wait_call(self, action, match=None, since=0, timeout=WAIT):
        """The first CALL of action (whose payload satisfies match) at or after index since."""

        def find():
            for f in self.calls(action, since):
                if match is None or match(f.payload):
                    return f
            return None

        return await self.frames.until(find, timeout, "%s from the charger" % action)

    async def answer_to(self, frame, timeout=WAIT):
        """The CSMS's answer (a Frame) to a CALL the charger sent."""

        def find():
            for f in self.frames.items:
                if f.dir == "out" and f.kind in (3, 4) and f.msg[1] == frame.msg[1]:
                    return f
            return None

        return await self.frames.until(find, timeout, "the answer to %s" % frame.action)

    def index(self, frame):
        return self.frames.items.index(frame)

    async def wait_status(self, connector, status, since=0, timeout=WAIT, error_code=None):
        def ok(p):
            return p["connectorId"] == connector and p["status"] == status and (error_code is None or p["errorCode"] == error_code)

        return await self.wait_call("StatusNotification", ok, since, timeout)

    async def call(self, request, cp_id="CP1", validate=True):
        """Send a CALL (an ocpp.v16.call object) and return the charger's answer
        frame: [3, id, payload] or [4, id, code, description, details]."""
        cs = await self.connected.until(lambda: self.connections.get(cp_id), what="%s connected" % cp_id)
        msg_id = "t-%d" % next(self._ids)
        await cs.call(request, suppress=True, unique_id=msg_id, skip_schema_validation=not validate)

        def answer():
            for f in self.frames.items:
                if f.dir == "in" and f.kind in (3, 4) and f.msg[1] == msg_id:
                    return f.msg
            return None

        return await self.frames.until(answer, what="answer to %s" % type(request).__name__)

    async def configure(self, *pairs, cp_id="CP1"):
        """ChangeConfiguration of each (key, value), every one Accepted."""
        from ocpp.v16 import call

        for key, value in pairs:
            msg = await self.call(call.ChangeConfiguration(key=key, value=value), cp_id)
            assert msg[0] == 3 and msg[2]["status"] == "Accepted", (key, value, msg)

    async def result(self, request, cp_id="CP1"):
        """The CALLRESULT payload of a CALL (fails on a CALLERROR)."""
        msg = await self.call(request, cp_id)
        assert msg[0] == 3, msg
        return msg[2]


@contextlib.asynccontextmanager
async def peer_csms(**kw):
    csms = await PeerCsms(**kw).start()
    try:
        yield csms
    finally:
        await csms.stop()


# ---- the charger --------------------------------------------------------------------


def host_board(meter_ms=250, **hw):
    """The emulator's host board (real drivers on simulated parts), the meter
    over Modbus RTU frames to the in-process slave; hw: more "hw" keys."""
    from boards import host
    from host_tools.emulator.hardware import EmulatedHardware

    conf = {"sim_meter_link": "inproc"}
    conf.update(hw)

    def make():
        return EmulatedHardware(host.build({"hw": conf}), meter_ms=meter_ms)

    return make


def two_connector_board(meter_ms=250):
    """Two host boards' drivers behind one BoardHardware: connectors 1 and 2,
    each with its own simulated EV (hw.sims[1], hw.sims[2])."""
    from boards import host
    from firmware.hardware import BoardHardware

    def make():
        parts = [host.build({"hw": {"sim_meter_link": "inproc"}}) for _ in range(2)]
        hw = BoardHardware(parts, meter_ms=meter_ms)
        hw.sims = [None] + [d["sim"] for d in parts]
        hw.close = lambda: [d["close"]() for d in parts]
        return hw

    return make


def fleet_board(registry):
    """The fleet model; registry[identity] is the newest hardware object."""
    from host_tools.emulator.hardware import FleetHardware

    def make():
        hw = FleetHardware(power_w=11000.0)
        registry.append(hw)
        return hw

    return make


class Charger:
    """One emulated charger (run_charger: the real agent, restarted on a
    reboot on the same state directory), its events, and its bench console."""

    def __init__(self, csms_url, state_dir, identity="CP1", ocpp=None, make_hw=None, **settings):
        self.settings = {
            "identity": identity,
            "csms_url": csms_url,
            "state_dir": state_dir,
            "vendor": "OpenChargeAgent",
            "model": "Emulator",
            "serial": identity,
            "firmware_version": "test",
            "ocpp": dict(ocpp or {}),
        }
        self.settings.update(FAST)
        self.settings.update(settings)
        self.make_hw = make_hw or host_board()
        self.events = Changes()
        self.agents = []  # one per boot, newest last
        self.hub = ConsoleHub()
        self.console_url = None
        self._server = None
        self._task = None

    @property
    def agent(self):
        return self.agents[-1]

    @property
    def hw(self):
        return self.agent.hw

    def _out(self, line):
        try:
            self.events.append(json.loads(line))
        except ValueError:
            pass

    def _on_agent(self, agent):
        self.agents.append(agent)
        self.events.append({"event": "agent_started", "boot": len(self.agents)})

    async def start(self):
        os.makedirs(self.settings["state_dir"], exist_ok=True)
        self._server = await asyncio.start_server(self.hub.serve, "127.0.0.1", 0)
        self.console_url = "socket://127.0.0.1:%d" % self._server.sockets[0].getsockname()[1]
        self._task = asyncio.ensure_future(run_charger(self.settings, self.make_hw, self.hub, out=self._out, on_agent=self._on_agent))
        await self.events.until(lambda: self.agents, what="the agent to start")
        return self

    async def stop(self):
        if self._task is not None and not self._task.done():
            self.agent.stop()
            try:
                await asyncio.wait_for(self._task, WAIT)
            finally:
                self._server.close()
        elif self._task is not None:
            self._task.result()  # raise what ended it

    def seen(self, name, since=0, **match):
        return [e for e in self.events.items[since:] if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

    def mark(self):
        return len(self.events.items)

    async def wait_event(self, name, since=0, timeout=WAIT, **match):
        """The first agent event `name` (with fields equal to match) at or after index since."""
        found = await self.events.until(lambda: self.seen(name, since, **match), timeout, "event %s %r" % (name, match))
        return found[0]

    def console(self):
        """An AsyncBench on the charger's bench console (pyserial socket://)."""
        return AsyncBench(self.console_url)


class AsyncBench:
    """host_tools.bench.BenchConsole (blocking pyserial) used from a test's
    event loop: each command runs in a worker thread while the loop serves
    the charger."""

    def __init__(self, url):
        self.url = url
        self.bench = None

    async def __aenter__(self):
        self.bench = await asyncio.to_thread(BenchConsole, self.url, 115200, WAIT)
        return self

    async def __aexit__(self, *exc):
        await asyncio.to_thread(self.bench.close)

    async def cmd(self, line, **fields):
        return await asyncio.to_thread(self.bench.cmd, line, **fields)

    async def wait_event(self, name, timeout=WAIT, **match):
        return await asyncio.to_thread(self.bench.wait_event, name, timeout, **match)

    async def status(self):
        return await self.cmd("status")

    async def status_until(self, predicate, timeout=WAIT, what="console status"):
        """The console status once predicate(status) holds (asked again on each miss)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            st = await self.status()
            if predicate(st):
                return st
            if loop.time() >= deadline:
                raise AssertionError("timed out waiting for %s; last: %r" % (what, st))
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def charger(csms_url, state_dir, **kw):
    c = await Charger(csms_url, state_dir, **kw).start()
    try:
        yield c
    finally:
        await c.stop()


@contextlib.asynccontextmanager
async def peer_bench(state_dir, id_tags=None, boot_answers=(("Accepted", 300),), **charger_kw):
    """A PeerCsms and one charger on it (CP1), booted: yields (csms, charger)."""
    async with peer_csms(id_tags=id_tags, boot_answers=boot_answers) as csms:
        async with charger(csms.url, state_dir, **charger_kw) as c:
            await booted(csms)
            yield csms, c


async def booted(csms, since=0):
    """Wait until the charger is accepted and reported connector 0 (C16E §3.22)."""
    await csms.wait_call("BootNotification", since=since)
    return await csms.wait_status(0, "Available", since=since)


async def eventually(check, timeout=WAIT, what="condition", interval=0.02):
    """Poll check() (state outside our event lists, e.g. SQLite rows or an
    HTTP API; it may be a coroutine function) until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        await asyncio.sleep(interval)


def run(coro):
    return asyncio.run(coro)
