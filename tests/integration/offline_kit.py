"""The real agent against a Central System written on the `ocpp` package.

- `Csms`: ocpp.v16.ChargePoint as the central system, behind a `websockets`
  server that can be stopped and started again on the same port (the
  charger is offline in between) or whose connections can be cut. A reader
  task takes every frame off the socket as it arrives, so arrival times are
  true even while a handler holds its answer back; answers can be held,
  swallowed (never sent) or replaced by a CALLERROR.
- `Rig`: firmware.agent.Agent on the fleet model's hardware (every part
  ideal, feedback at once), its journal with fsync in a temporary directory,
  and an injected monotonic clock that moves only when the test says
  (`rig.at(ms)` / `rig.advance(ms)` move it, running the agent's timers at
  each deadline on the way, as its timer loop does). The WebSocket and its reconnect back-off run in real time.
  Every frame the core sends or receives is seen synchronously through the
  agent's message log (`rig.frames()`).
"""
import asyncio
import datetime
import json
import os
import time

import websockets
from ocpp.exceptions import InternalError
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CentralSystemBase
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from firmware.agent import Agent
from host_tools.emulator.hardware import FleetHardware

TAG = "TAG-OFFLINE"
FIRST_TX_ID = 7001


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def epoch_ms(iso):
    d = datetime.datetime.strptime(iso.rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return int(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


class Wire:
    """The server side of one WebSocket as the ocpp package sees it. A task
    reads every frame as it arrives (kept in Csms.received with its arrival
    time); recv() hands them to the package one at a time."""

    def __init__(self, ws, csms):
        self.ws = ws
        self.csms = csms
        self.queue = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for text in self.ws:
                msg = json.loads(text)
                self.csms.arrived(msg)
                await self.queue.put(text)
        except websockets.ConnectionClosed:
            pass
        await self.queue.put(None)

    async def recv(self):
        text = await self.queue.get()
        if text is None:
            raise websockets.ConnectionClosed(None, None)
        return text

    async def send(self, text):
        msg = json.loads(text)
        if msg[0] in (3, 4) and msg[1] in self.csms.swallow:
            self.csms.swallowed.append(msg[1])
            self.csms._notify()
            return  # an answer lost on its way
        self.csms.answered(msg)
        await self.ws.send(text)


class CentralSystem(CentralSystemBase):
    """One charger's session; the answers follow the Csms's script."""

    def __init__(self, cp_id, wire, csms):
        CentralSystemBase.__init__(self, cp_id, wire, response_timeout=5)
        self.csms = csms

    async def _script(self, action, call_unique_id):
        csms = self.csms
        gate = csms.hold.get(action)
        if gate is not None:
            await gate.wait()
        if csms.no_answer.get(action, 0) > 0:
            csms.no_answer[action] -= 1
            csms.swallow.add(call_unique_id)
        if csms.errors.get(action, 0) > 0:
            csms.errors[action] -= 1
            raise InternalError(description="scripted failure")

    @on(Action.boot_notification)
    async def on_boot(self, call_unique_id, **_):
        await self._script("BootNotification", call_unique_id)
        return call_result.BootNotification(current_time=utc_now(), interval=300, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **_):
        return call_result.Heartbeat(current_time=utc_now())

    @on(Action.status_notification)
    def on_status(self, connector_id, status, error_code, **_):
        self.csms.statuses.append((connector_id, status, error_code))
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag, call_unique_id, **_):
        await self._script("Authorize", call_unique_id)
        return call_result.Authorize(id_tag_info={"status": self.csms.tags.get(id_tag, "Invalid")})

    @on(Action.start_transaction)
    async def on_start(self, id_tag, call_unique_id, **_):
        await self._script("StartTransaction", call_unique_id)
        csms = self.csms
        csms.next_tx_id += 1
        return call_result.StartTransaction(transaction_id=csms.next_tx_id - 1,
                                            id_tag_info={"status": csms.tags.get(id_tag, "Invalid")})

    @on(Action.stop_transaction)
    async def on_stop(self, call_unique_id, **_):
        await self._script("StopTransaction", call_unique_id)
        return call_result.StopTransaction()

    @on(Action.meter_values)
    async def on_meter_values(self, call_unique_id, **_):
        await self._script("MeterValues", call_unique_id)
        return call_result.MeterValues()


class Csms:
    """The central system: a websockets server on a fixed port."""

    def __init__(self, clock=None):
        self.clock = clock  # the test's fake clock, stamped on every arrival
        self.port = 0
        self.server = None
        self.sessions = []
        self.received = []  # {"msg", "t", "fake"} per frame from the charger, as it arrived
        self.sent = []  # {"msg", "t", "fake"} per answer sent
        self.statuses = []
        self.tags = {TAG: "Accepted"}
        self.next_tx_id = FIRST_TX_ID
        self.hold = {}  # action -> asyncio.Event: answers wait for it
        self.errors = {}  # action -> number of CALLERRORs to answer with
        self.no_answer = {}  # action -> number of answers to swallow
        self.swallow = set()
        self.swallowed = []
        self._changed = asyncio.Condition()

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    async def start(self):
        self.server = await websockets.serve(self._handler, "127.0.0.1", self.port, subprotocols=["ocpp1.6"])
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        """Down: no connection, and new ones refused until start()."""
        self.server.close()
        await self.server.wait_closed()
        for s in self.sessions:
            s.task.cancel()
        self.sessions = []

    async def cut(self):
        """Abort the TCP connections (the charger sees 1006) and stay up;
        answers still held for them are never sent."""
        for s in self.sessions:
            s.wire.ws.transport.abort()
            s.task.cancel()
        self.sessions = []

    async def _handler(self, ws):
        cp_id = ws.request.path.strip("/")
        wire = Wire(ws, self)
        cs = CentralSystem(cp_id, wire, self)
        cs.wire = wire
        cs.task = asyncio.current_task()
        self.sessions.append(cs)
        try:
            await cs.start()
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass
        finally:
            wire.task.cancel()
            if cs in self.sessions:
                self.sessions.remove(cs)

    # -- what came and went ------------------------------------------------------

    def arrived(self, msg):
        self.received.append({"msg": msg, "t": time.monotonic(), "fake": self.clock.t if self.clock else None})
        self._notify()

    def answered(self, msg):
        self.sent.append({"msg": msg, "t": time.monotonic(), "fake": self.clock.t if self.clock else None})
        self._notify()

    def _notify(self):
        async def note():
            async with self._changed:
                self._changed.notify_all()

        asyncio.ensure_future(note())

    def calls(self, action=None):
        """CALLs received from the charger: [{"msg", "t", "fake"}], in arrival order."""
        return [r for r in self.received if r["msg"][0] == 2 and (action is None or r["msg"][2] == action)]

    def tx_calls(self):
        return [r for r in self.calls() if r["msg"][2] in ("StartTransaction", "StopTransaction", "MeterValues")]

    def answer_to(self, msg_id):
        for r in self.sent:
            if r["msg"][1] == msg_id:
                return r
        return None

    async def wait(self, predicate, timeout=5.0):
        """Until predicate() is true (re-checked on every frame in or out)."""

        async def until():
            async with self._changed:
                while not predicate():
                    await self._changed.wait()

        if not predicate():
            await asyncio.wait_for(until(), timeout)

    async def wait_calls(self, action, n, timeout=5.0):
        await self.wait(lambda: len(self.calls(action)) >= n, timeout)
        return self.calls(action)


class FakeMono:
    """The agent's monotonic clock (ms), moved by the test."""

    def __init__(self, t=1000):
        self.t = t

    def now(self):
        return self.t


class Rig:
    """The agent, its hardware and its journal; see the module docstring."""

    def __init__(self, state_dir, csms, ocpp=None):
        self.mono = FakeMono()
        self.csms = csms
        csms.clock = self.mono
        self.state_dir = str(state_dir)
        # No clock-aligned readings: they follow the wall clock, not the test's.
        self.ocpp = dict({"ClockAlignedDataInterval": 0}, **(ocpp or {}))
        self.lines = []
        self.agent = None
        self.task = None

    def _out(self, line):
        self.lines.append(json.loads(line))

    async def start(self):
        """Boot the agent (a fresh one on the same journal after stop())."""
        os.makedirs(self.state_dir, exist_ok=True)
        self.hw = FleetHardware(power_w=7200.0, energy_wh=10000.0, clock=lambda: self.mono.t / 1000.0)
        settings = {
            "identity": "CP-OFF",
            "csms_url": self.csms.url,
            "state_dir": self.state_dir,
            "connectors": 1,
            "sync": True,
            "log_frames": True,
            "ocpp": self.ocpp,
            "backoff_min_s": 0.02,
            "backoff_base_s": 0.05,
            "backoff_max_s": 0.2,
        }
        self.agent = Agent(settings, self.hw, mono=self.mono, out=self._out)
        self.task = asyncio.ensure_future(self.agent.run())
        await self.wait_until(lambda: self.agent.running)  # a stop() before run() began would be lost

    async def stop(self):
        self.agent.stop()
        await asyncio.wait_for(self.task, 5)

    # -- time ----------------------------------------------------------------------

    def at(self, ms):
        """Move the clock to ms. On the way the agent acts at every deadline
        it asked for (a timeout, a sample, a retry), as its timer loop
        would, and then at ms."""
        while True:
            w = self.agent.cp.next_wake()
            if w is None or w >= ms or w <= self.mono.t:
                break
            self.mono.t = w
            self.agent.step()
        self.mono.t = ms
        self.agent.step()

    def advance(self, ms, step_ms=None):
        """Move the clock ms ahead, in steps of step_ms (the agent acts at each)."""
        end = self.mono.t + ms
        step = step_ms or ms
        while self.mono.t < end:
            self.at(min(self.mono.t + step, end))

    # -- what the agent did ----------------------------------------------------------------

    def events(self, name):
        return [x for x in self.lines if x.get("event") == name]

    def frames(self, direction="tx", action=None, mtype="CALL"):
        """Frames the core sent ("tx") or received ("rx"), from its message log."""
        return [f for f in self.events("frame") if f["dir"] == direction and f["type"] == mtype and
                (action is None or f["action"] == action)]

    async def wait_event(self, name, n=1, timeout=5.0, **match):
        """The n-th event called name (fields equal to match), waiting for it."""
        end = time.monotonic() + timeout
        while True:
            found = [e for e in self.events(name) if all(e.get(k) == v for k, v in match.items())]
            if len(found) >= n:
                return found[n - 1]
            if time.monotonic() > end:
                raise AssertionError("no %s event %r within %.1f s" % (name, match, timeout))
            await asyncio.sleep(0.005)

    def connected(self):
        return self.agent.cp.online

    async def wait_online(self, timeout=5.0):
        await self.wait_until(lambda: self.agent.cp.online and self.agent.cp.boot == 2, timeout)

    async def wait_offline(self, timeout=5.0):
        await self.wait_until(lambda: not self.agent.cp.online, timeout)

    async def wait_until(self, predicate, timeout=5.0):
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError("condition not met within %.1f s" % timeout)
            await asyncio.sleep(0.005)

    async def settle(self):
        """Until the agent has nothing in flight and its outbox is empty."""
        await self.wait_until(lambda: self.agent.cp.ep is None or not self.agent.cp.ep.busy())

    # -- the EV driver ----------------------------------------------------------------------

    def plug_and_charge(self):
        self.hw.plug(True)
        self.hw.card(TAG)
        self.hw.draw(True)

    def present(self):
        self.hw.card(TAG)

    def unplug(self):
        self.hw.plug(False)


def payload(rec):
    return rec["msg"][3]
