# What lets one process run thousands of emulated chargers (CPython only).
#
# Every charger is the real agent (firmware/agent.py: core, journal, queue,
# RPC, validation) with firmware/net's connection manager and its sans-I/O
# WebSocket framing and handshake. Three pieces of host machinery replace
# what a device needs one task each for:
#
# - PushConnection: an asyncio BufferedProtocol carrying firmware/net's
#   WsConnection. The event loop reads into one receive buffer shared by the
#   whole fleet (recv_into: no 256 KiB allocation per read, as a stream's
#   recv() makes), and the connection parses it and calls the agent at once:
#   no reader task, no stream, no future per message. Frames are written
#   straight to the socket (Transport.send_nowait).
# - SharedTimers: one timer heap for the fleet, run from a single loop timer:
#   the agents' timer passes (FleetAgent) and the simulated drivers' actions
#   (Driver) are entries in it, not sleeping tasks.
# - FleetAgent: the Agent with its timer loop on SharedTimers.
import asyncio
import heapq
import math

from firmware.agent import Agent, _default_transport
from firmware.compat import print_exception, wire
from firmware.net.client import app_event
from firmware.net.handshake import Handshake, HandshakeError
from firmware.net.ws import CLOSE_ABNORMAL, EV_CLOSE, EV_PING, ST_CLOSED, ST_OPEN, WsConnection


_RX = bytearray(65536)  # every PushConnection reads into this, and parses it before the next read
_RX_MV = memoryview(_RX)


class PushConnection(asyncio.BufferedProtocol):
    """One WebSocket on an asyncio transport, with the surface of
    firmware/net/client.Connection that the Transport uses, plus start(deliver):
    from then on every event is handed to deliver(ev, ws) as it is parsed."""

    def __init__(self, max_message, rng):
        self._max_message = max_message
        self._rng = rng
        self.transport = None
        self.ws = None
        self.subprotocol = None
        self._hs = None
        self._upgraded = None
        self._deliver = None
        self._lost = None  # a future done once the TCP connection is gone
        self._paused = None  # a future while the transport's buffer is full

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._lost = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint):
        return _RX_MV

    def buffer_updated(self, n):
        ws = self.ws
        if ws is None:
            self._handshake(_RX, n)
        elif self._deliver is not None:
            ws.feed(_RX, n)
            self._drain()  # parses all of it: the buffer is free again
        else:
            ws.feed(_RX[:n])  # kept until start(): a copy of its own

    def connection_lost(self, exc):
        if not self._lost.done():
            self._lost.set_result(None)
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        up = self._upgraded
        if up is not None and not up.done():
            up.set_exception(HandshakeError("connection closed before the upgrade answer"))
            return
        ws = self.ws
        if ws is not None and self._deliver is not None and ws.lost() == EV_CLOSE:
            self._hand(EV_CLOSE)

    def pause_writing(self):
        self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        p = self._paused
        self._paused = None
        if p is not None and not p.done():
            p.set_result(None)

    # -- the upgrade -------------------------------------------------------------

    async def upgrade(self, hs):
        self._hs = hs
        self._upgraded = asyncio.get_running_loop().create_future()
        self.transport.write(hs.request())
        await self._upgraded
        return self

    def _handshake(self, data, n):
        up = self._upgraded
        if up is None or up.done():
            return  # nothing asked yet, or already refused: ignored
        try:
            if not self._hs.feed(data, n):  # copies what it keeps
                return
        except HandshakeError as e:
            up.set_exception(e)
            return
        hs = self._hs
        self.ws = WsConnection(max_message=self._max_message, rng=self._rng)
        self.subprotocol = hs.subprotocol
        if hs.extra:
            self.ws.feed(hs.extra)
        up.set_result(None)

    # -- events to the application -----------------------------------------------

    def start(self, deliver):
        self._deliver = deliver
        self._drain()

    def _drain(self):
        ws = self.ws
        try:
            while self._deliver is not None:
                ev, frame = app_event(ws)
                if frame is not None:
                    self._write(frame)
                if ev is None:
                    return
                if ev != EV_PING:
                    self._hand(ev)
        except Exception as e:
            # A fault of ours: drop this connection rather than hang on it.
            print_exception(e)
            ws.state = ST_CLOSED
            ws.close_code = CLOSE_ABNORMAL
            ws.close_reason = "internal error"
            self.transport.abort()
            self._hand(EV_CLOSE)

    def _hand(self, ev):
        deliver = self._deliver
        if ev == EV_CLOSE:
            self._deliver = None  # nothing after the close
        if deliver is not None:
            deliver(ev, self.ws)

    # -- client.Connection's surface -------------------------------------------------

    def _write(self, frame):
        t = self.transport
        if frame is None or t is None or t.is_closing():
            return False
        t.write(wire(frame))
        return True

    def send_nowait(self, text):
        if self.ws.state != ST_OPEN or self.transport.is_closing():
            return False
        if self._paused is not None:
            return None
        self.transport.write(wire(self.ws.send_text(text)))
        return True

    async def send_text(self, text):
        while self._paused is not None:
            await self._paused
        return bool(self.send_nowait(text))

    async def ping(self, payload=b""):
        if self.ws.state != ST_OPEN:
            return False
        return self._write(self.ws.send_ping(payload))

    async def close(self, code, reason=""):
        return self._write(self.ws.close(code, reason))

    async def shutdown(self, abort=False):
        self._deliver = None
        t = self.transport
        if t is None:
            return
        if abort:
            t.abort()
            return
        t.close()
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), 2)
        except asyncio.TimeoutError:
            t.abort()


async def open_push(settings, rng, attempt):
    """The opener for client.connect(): a PushConnection, upgraded."""
    loop = asyncio.get_running_loop()
    kw = {}
    if settings.secure:
        kw["ssl"] = settings.tls_context()
        kw["server_hostname"] = settings.host
    conn = PushConnection(settings.max_message, rng)
    await loop.create_connection(lambda: conn, settings.host, settings.port, **kw)
    attempt.append(conn)
    hs = Handshake(settings.host_header, settings.path, settings.subprotocols, settings.headers, rng)
    attempt.append(hs)
    return await conn.upgrade(hs)


def push_transport(config, agent):
    """A transport factory for Agent: firmware/net's Transport on PushConnections."""
    return _default_transport(config, agent, opener=open_push)


_RUNNING = float("-inf")


class SharedTimers:
    """One timer heap for a fleet: at(when, fn, arg) runs fn(arg, when) at
    loop time `when` (seconds), from a single loop timer armed for the
    earliest entry, on a grid of `tick` seconds: what falls due within one
    tick runs in one wake-up of the process (an agent's own timer loop
    coalesces 20 ms the same way). Entries are never cancelled; their owners
    ignore the ones they superseded."""

    def __init__(self, loop=None, tick=0.01):
        self.loop = loop or asyncio.get_running_loop()
        self.tick = tick
        self.heap = []
        self.seq = 0
        self._handle = None
        self._armed = None

    def at(self, when, fn, arg):
        self.seq += 1
        heapq.heappush(self.heap, (when, self.seq, fn, arg))
        armed = self._armed
        if armed is None or when < armed:
            self._arm(when)

    def _arm(self, when):
        # The grid point at or after `when`; re-armed only for an earlier one.
        g = math.ceil(when / self.tick) * self.tick
        if self._armed is not None and g >= self._armed:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._armed = g
        self._handle = self.loop.call_at(g, self._run)

    def _run(self):
        self._handle = None
        self._armed = _RUNNING  # entries added meanwhile wait for the end of the run
        heap = self.heap
        now = self.loop.time()
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            when, _, fn, arg = pop(heap)
            try:
                fn(arg, when)
            except Exception as e:
                print_exception(e)
        self._armed = None
        if heap:
            self._arm(heap[0][0])


class _Wake:
    """What the agent's code sets to ask for an early timer pass."""

    def __init__(self, agent):
        self.agent = agent

    def set(self):
        a = self.agent
        a._schedule(a._fleet_timers.loop.time())

    def clear(self):
        pass


class JournalFlusher:
    """Hands the fleet's unsynced journals to the OS every `every_s` seconds
    (on SharedTimers), for the journals written to since the last time."""

    def __init__(self, timers, every_s):
        self.timers = timers
        self.every_s = every_s
        self.dirty = {}
        self._tick(None)

    def mark(self, store):
        self.dirty[store] = True

    def _tick(self, when):
        dirty = self.dirty
        self.dirty = {}
        for store in dirty:
            store.flush()
        self.timers.at(self.timers.loop.time() + self.every_s, JournalFlusher._tick, self)


class FleetAgent(Agent):
    """The agent with its timer loop as entries of a fleet's SharedTimers
    (no task sleeping per charger) and its connections pushed (no reader
    task); with a JournalFlusher, its unsynced journal is handed to the OS
    by the flusher rather than after every step. Everything else is Agent."""

    def __init__(self, settings, hw, timers, out=False, transport_factory=push_transport, flusher=None):
        self._fleet_timers = timers
        self._flusher = flusher
        self._due = None
        self._over = None
        super().__init__(settings, hw, transport_factory=transport_factory, out=out)
        self._wake = _Wake(self)

    def _flush_journal(self):
        if self._flusher is None:
            self.store.flush()
        else:
            self._flusher.mark(self.store)

    async def _timers(self):
        self._over = self._fleet_timers.loop.create_future()
        self._pass_due(None)
        try:
            await self._over
        finally:
            self._due = None

    def _rearm(self, w):
        # A new deadline before the planned pass: the pass moves to it (the
        # agent's own loop would run a pass now and then sleep until it).
        self._sleep_until = w
        delay = w - self.mono.now()
        self._schedule(self._fleet_timers.loop.time() + (delay / 1000.0 if delay > 0 else 0.0))

    def _schedule(self, when):
        if self._over is None or self._over.done():
            return
        due = self._due
        if due is not None and due <= when:
            return  # a pass already comes sooner
        self._due = when
        self._fleet_timers.at(when, FleetAgent._pass_due, self)

    def _pass_due(self, when):
        if when is not None and when != self._due:
            return  # superseded by an earlier pass
        self._due = 0.0  # wakes asked for during the pass are for this pass (as in Agent._timers)
        over = self._over
        try:
            delay = self.timer_pass()
        except Exception as e:
            if not over.done():
                over.set_exception(e)
            return
        finally:
            self._due = None
        if delay is None:
            if not over.done():
                over.set_result(None)
            return
        self._schedule(self._fleet_timers.loop.time() + delay / 1000.0)


class Driver:
    """A simulated EV driver on SharedTimers: a session every every_s
    seconds from a random phase, each action of plan(every_s, rng) at its
    time; lateness.note(ms) hears how late each ran."""

    def __init__(self, timers, hw_of, identity, id_tag, every_s, rng, lateness, plan):
        self.timers = timers
        self.hw_of = hw_of
        self.identity = identity
        self.id_tag = id_tag
        self.every_s = every_s
        self.rng = rng
        self.lateness = lateness
        self.plan = plan
        self.stopped = False
        self.plugged = self.tapped = False
        self.start_s = timers.loop.time() + rng.random() * every_s
        self.k = 0
        self.steps = ()
        self.i = 0
        self.t0 = 0.0
        self._session()

    def stop(self):
        self.stopped = True
        hw = self.hw_of(self.identity)
        if hw is not None and hw.listener is not None:
            if self.tapped:
                hw.card(self.id_tag)
            if self.plugged:
                hw.plug(False)
        self.plugged = self.tapped = False

    def _session(self):
        self.t0 = self.start_s + self.k * self.every_s
        self.k += 1
        self.steps = self.plan(self.every_s, self.rng)
        self.i = 0
        self.plugged = self.tapped = False
        self._next()

    def _next(self):
        self.timers.at(self.t0 + self.steps[self.i][0], Driver._act, self)

    def _act(self, when):
        if self.stopped:
            return
        self.lateness.note((self.timers.loop.time() - when) * 1000.0)
        what = self.steps[self.i][1]
        self.i += 1
        hw = self.hw_of(self.identity)
        if hw is None or hw.listener is None:
            self._session()  # not booted yet (or rebooting): this session is skipped
            return
        if what == "plug":
            hw.plug(True)
            self.plugged = True
            self.lateness.sessions += 1
        elif what == "card":
            hw.card(self.id_tag)
            self.tapped = not self.tapped
        elif what == "draw":
            hw.draw(True)
        else:
            hw.plug(False)
            self.plugged = False
        if self.i < len(self.steps):
            self._next()
        else:
            self._session()
