# The connection manager: one WebSocket to the CSMS at a time, kept up.
#
#   t = Transport(config, on_open=..., on_message=..., on_close=..., on_fail=...)
#   asyncio.create_task(t.run())       # connects, serves, reconnects, forever
#   ok = await t.send(text)            # False when not connected (not queued)
#   ok = t.send_nowait(text)           # the same without awaiting; None: use send()
#   await t.stop()                     # close handshake, run() returns
#
# Callbacks are plain functions, or coroutine functions (awaited, so a slow
# on_message holds the reading of the next message):
#   on_open(subprotocol)      upgrade accepted; subprotocol picks the version
#   on_message(text)          one text message
#   on_close(code, reason)    the connection that on_open announced has ended;
#                             code is the peer's close code, 1006 when the
#                             connection broke or the peer stopped answering
#                             pings, or ours when we refused its data (1002,
#                             1003, 1007, 1009)
#   on_fail(kind, detail)     an attempt failed before on_open (client.FAIL_*);
#                             kind "tls" is the InvalidCentralSystemCertificate
#                             case of the security whitepaper (A00.FR.310)
# Between attempts the manager waits as backoff.py says; WebSocket pings go
# out every ping_interval_s (0: none) and a pong missing for pong_timeout_s
# replaces the connection.
#
# A connection is read by a task (client.Connection), or delivers its events
# itself when it has start(deliver) (callback-driven connections of host
# fleets, opened by the `opener` given to the Transport; see client.connect).
# Such a connection calls on_message synchronously from its data callback; a
# coroutine on_message then runs as a task of its own.
import asyncio

from firmware.compat import Monotonic, print_exception, urandom, wait_event
from firmware.net.backoff import Backoff
from firmware.net.client import ConnectFailed, connect
from firmware.net.settings import ConfigError, Settings
from firmware.net.ws import CLOSE_ABNORMAL, CLOSE_NORMAL, EV_CLOSE, EV_PONG, EV_TEXT

_IDLE_MS = 3600000  # keepalive re-checks its interval at least this often


class RealTimer:
    """Milliseconds since start, and waits that an event can cut short."""

    def __init__(self):
        self._mono = Monotonic()

    def now(self):
        return self._mono.now()

    async def wait(self, event, ms):
        """True when the event is set, False when ms ran out first."""
        return await wait_event(event, ms)


def _noop(*args):
    return None


class Transport:
    def __init__(self, config, on_open=None, on_message=None, on_close=None, on_fail=None, timer=None, rng=urandom, opener=None):
        self.settings = Settings(config)
        self._on_open = on_open or _noop
        self._on_message = on_message or _noop
        self._on_close = on_close or _noop
        self._on_fail = on_fail or _noop
        self._timer = timer or RealTimer()
        self._rng = rng
        self._opener = opener
        self._backoff = self._make_backoff(self.settings)
        self._ping_ms = self.settings.ping_interval_ms
        self._conn = None
        self._running = False
        self._stopping = False
        self._pending = None
        self._wake = asyncio.Event()  # cuts a backoff wait short
        self._ka_wake = asyncio.Event()  # the ping interval changed
        self._pong = asyncio.Event()
        self._done = asyncio.Event()
        self._end = None
        self._reader_task = None

    def _make_backoff(self, s):
        return Backoff(s.backoff_min_ms, s.backoff_base_ms, s.backoff_max_ms, s.backoff_reset_ms, self._rng)

    @property
    def connected(self):
        return self._conn is not None

    @property
    def subprotocol(self):
        conn = self._conn
        return conn.subprotocol if conn is not None else None

    async def send(self, text):
        """Send one text message now. True once handed to the socket; False
        when there is no open connection (nothing is queued here)."""
        conn = self._conn
        if conn is None:
            return False
        return await conn.send_text(text)

    def send_nowait(self, text):
        """send() without awaiting: True once handed to the socket, False
        when there is no open connection, None when the connection cannot
        take it at once (use send(), which waits its turn)."""
        conn = self._conn
        if conn is None:
            return False
        return conn.send_nowait(text)

    def set_ping_interval(self, seconds):
        """WebSocketPingInterval: seconds between pings, 0 for none."""
        if type(seconds) is not int or seconds < 0:
            raise ConfigError("ping interval must be a whole number of seconds, 0 or more")
        self._ping_ms = seconds * 1000
        self._ka_wake.set()

    async def reconfigure(self, config):
        """Take new settings (a new AuthorizationKey, URL, profile...): close
        the current connection and connect again at once with them. The
        security profile may only be raised (security whitepaper §2.1)."""
        new = Settings(config)
        if new.profile < self.settings.profile:
            raise ConfigError("the security profile may not be lowered")
        self._pending = new
        self._wake.set()
        await self._close_current(CLOSE_NORMAL, "reconfigured")

    async def stop(self, code=CLOSE_NORMAL, reason=""):
        """Close the connection (closing handshake) and let run() return."""
        self._stopping = True
        self._wake.set()
        await self._close_current(code, reason)

    async def _close_current(self, code, reason):
        conn = self._conn
        if conn is None:
            return
        await conn.close(code, reason)
        if asyncio.current_task() is self._reader_task:
            return  # called from a callback: the reader sees the answer next
        if not await self._timer.wait(self._done, self.settings.close_timeout_ms):
            self._finish(CLOSE_ABNORMAL, "no close reply")

    async def run(self):
        """Connect, serve, reconnect until stop(). One connection at a time."""
        if self._running:
            raise RuntimeError("Transport already running")
        self._running = True
        self._stopping = False
        wait = False  # the first attempt goes at once
        try:
            while not self._stopping:
                if self._pending is not None:
                    self.settings = self._pending
                    self._pending = None
                    self._backoff = self._make_backoff(self.settings)
                    self._ping_ms = self.settings.ping_interval_ms
                    wait = False
                if wait:
                    self._wake.clear()
                    await self._timer.wait(self._wake, self._backoff.next_delay())
                    if self._stopping or self._pending is not None:
                        continue
                wait = True
                try:
                    conn = await connect(self.settings, self._rng, self._opener)
                except ConnectFailed as e:
                    await self._call(self._on_fail, e.kind, e.detail)
                    continue
                if self._stopping or self._pending is not None:
                    # stop() or reconfigure() came while connecting.
                    await conn.close(CLOSE_NORMAL)
                    await conn.shutdown()
                    continue
                code, reason = await self._serve(conn)
                await self._call(self._on_close, code, reason)
        finally:
            self._running = False

    async def _serve(self, conn):
        self._end = None
        self._done.clear()
        self._pong.clear()
        self._conn = conn
        self._backoff.opened(self._timer.now())
        await self._call(self._on_open, conn.subprotocol)
        start = getattr(conn, "start", None)
        if start is None:
            reader = self._reader_task = asyncio.create_task(self._reader(conn))
        else:
            reader = None
            start(self._pushed)
        keepalive = asyncio.create_task(self._keepalive(conn))
        await self._done.wait()
        self._conn = None
        self._reader_task = None
        if reader is not None:
            reader.cancel()
        keepalive.cancel()
        code, reason = self._end
        await conn.shutdown(abort=code == CLOSE_ABNORMAL)
        self._backoff.closed(self._timer.now())
        return code, reason

    def _finish(self, code, reason):
        if self._end is None:
            self._end = (code, reason)
            self._done.set()

    async def _reader(self, conn):
        ws = conn.ws
        try:
            while True:
                ev = await conn.next_event()
                r = self._deliver(ev, ws)
                if r is not None:
                    await self._guard(r)
                if ev == EV_CLOSE:
                    return
        except Exception as e:
            # A fault of ours: drop this connection rather than hang on it.
            print_exception(e)
            self._finish(CLOSE_ABNORMAL, "internal error")

    def _deliver(self, ev, ws):
        # One event of the open connection; returns what an async
        # on_message gave back (to be awaited), else None.
        if ev == EV_TEXT:
            return self._call_now(self._on_message, ws.data)
        if ev == EV_PONG:
            self._pong.set()
        elif ev == EV_CLOSE:
            self._finish(ws.close_code, ws.close_reason)
        return None

    def _pushed(self, ev, ws):
        # deliver() of a connection that reads itself (see start above).
        r = self._deliver(ev, ws)
        if r is not None:
            asyncio.create_task(self._guard(r))

    async def _keepalive(self, conn):
        timer = self._timer
        while True:
            self._ka_wake.clear()
            ms = self._ping_ms
            if await timer.wait(self._ka_wake, ms if ms > 0 else _IDLE_MS):
                continue  # the interval changed: start again
            if ms <= 0:
                continue
            self._pong.clear()
            if not await conn.ping():
                continue  # the reader will see the connection go
            if not await timer.wait(self._pong, self.settings.pong_timeout_ms):
                # A dead peer: no pong in time. Drop it and connect again.
                self._finish(CLOSE_ABNORMAL, "no pong")
                return

    async def _call(self, fn, *args):
        r = self._call_now(fn, *args)
        if r is not None:
            await self._guard(r)

    def _call_now(self, fn, *args):
        # A fault in the application must not take the transport down.
        try:
            r = fn(*args)
        except Exception as e:
            print_exception(e)
            return None
        return r if r is not None and hasattr(r, "send") else None

    async def _guard(self, coro):
        try:
            await coro
        except Exception as e:
            print_exception(e)
