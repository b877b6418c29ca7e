# The only code that awaits sockets: TCP (and TLS) through asyncio streams,
# the same calls on MicroPython and CPython, driving the sans-I/O handshake
# and framing objects.
import asyncio

from firmware.compat import SYNC_WRITE, is_tls_error, urandom, wire
from firmware.net.handshake import Handshake, HandshakeError
from firmware.net.ws import (
    CLOSE_UNSUPPORTED_DATA,
    EV_BINARY,
    EV_CLOSE,
    EV_PING,
    ST_CLOSE_RECEIVED,
    ST_OPEN,
    ParseFailed,
    WsConnection,
)

# Why a connection attempt failed (ConnectFailed.kind).
FAIL_CONNECT = "connect"  # DNS, TCP refused or reset
FAIL_TIMEOUT = "timeout"  # no upgrade within connect_timeout_s
FAIL_TLS = "tls"  # TLS handshake: certificate refused (either side), protocol
FAIL_HTTP = "http"  # the server answered with another HTTP status (.status)
FAIL_HANDSHAKE = "handshake"  # a 101 we refuse: accept digest, subprotocol...

_RX = 1024
_HIGH_WATER = 65536  # bytes waiting in the transport beyond which send_nowait() defers


class ConnectFailed(Exception):
    def __init__(self, kind, detail, status=0):
        super().__init__(kind + ": " + detail)
        self.kind = kind
        self.detail = detail
        self.status = status


class Connection:
    """One open WebSocket: read events, send frames. Writes are serialised."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.ws = None
        self.subprotocol = None
        self._lock = asyncio.Lock()
        self._readinto = hasattr(reader, "readinto")  # MicroPython streams
        self._rx = bytearray(_RX)
        self._data = self._rx

    def upgraded(self, ws, subprotocol, leftover):
        self.ws = ws
        self.subprotocol = subprotocol
        if leftover:
            ws.feed(leftover)

    async def _write(self, frame):
        if frame is None:
            return False
        async with self._lock:
            try:
                self.writer.write(wire(frame))
                await self.writer.drain()
            except (OSError, ValueError):  # ValueError: mbedTLS on MicroPython
                return False
        return True

    async def send_text(self, text):
        """Send one text message; False when the connection cannot take it."""
        async with self._lock:
            if self.ws.state != ST_OPEN:
                return False
            try:
                self.writer.write(wire(self.ws.send_text(text)))
                await self.writer.drain()
            except (OSError, ValueError):
                return False
        return True

    def send_nowait(self, text):
        """Send one text message without awaiting: True once handed to the
        socket, False when the connection cannot take it, None when it must
        go through send_text() (a write under way, a full buffer, or a
        runtime whose streams send only in drain())."""
        if not SYNC_WRITE or self._lock.locked():
            return None
        if self.ws.state != ST_OPEN:
            return False
        transport = self.writer.transport
        if transport.get_write_buffer_size() > _HIGH_WATER:
            return None
        try:
            self.writer.write(wire(self.ws.send_text(text)))
        except (OSError, ValueError):
            return False
        return True

    async def ping(self, payload=b""):
        if self.ws.state != ST_OPEN:
            return False
        return await self._write(self.ws.send_ping(payload))

    async def close(self, code, reason=""):
        """Start the closing handshake (or answer one); False if not due."""
        return await self._write(self.ws.close(code, reason))

    async def next_event(self):
        """The next event for the application: EV_TEXT (ws.data), EV_PONG or
        EV_CLOSE (ws.close_code, ws.close_reason; the connection is then
        finished). Pings are answered here, the peer's close is echoed, a
        protocol fault or a binary message is answered with a close frame."""
        ws = self.ws
        while True:
            ev, frame = app_event(ws)
            if frame is not None:
                await self._write(frame)
            if ev is None:
                try:
                    n = await self._fill()
                except (OSError, ValueError):
                    n = 0
                if n:
                    ws.feed(self._data, n)
                    continue
                ws.lost()
                return EV_CLOSE
            if ev != EV_PING:
                return ev

    async def _fill(self):
        # Bytes in self._data[:n]; 0 at the end of the stream. MicroPython
        # reads into our buffer; CPython's streams hand out new bytes.
        if self._readinto:
            while True:
                n = await self.reader.readinto(self._rx)
                if n is not None:
                    return n
        self._data = await self.reader.read(_RX)
        return len(self._data)

    async def shutdown(self, abort=False):
        """Drop the TCP connection (abort: at once, without flushing)."""
        w = self.writer
        if not abort:
            try:
                w.close()
                await asyncio.wait_for(w.wait_closed(), 2)
                return
            except Exception:
                pass
        transport = getattr(w, "transport", None)
        try:
            if transport is not None:
                transport.abort()
            else:
                await w.wait_closed()  # MicroPython: closes the socket at once
        except Exception:
            pass


def app_event(ws):
    """(event, frame) from a WsConnection: frame, when not None, is the
    protocol's own answer to write first (a pong, the echo of the peer's
    close, our close for a fault or a binary message). event is EV_TEXT,
    EV_PONG or EV_CLOSE for the application, EV_PING (answered: look again),
    or None (feed more input)."""
    try:
        ev = ws.next_event()
    except ParseFailed as e:
        return EV_CLOSE, ws.close(e.code, e.reason)
    if ev == EV_PING:
        return EV_PING, ws.pong(ws.data)
    if ev == EV_CLOSE and ws.state == ST_CLOSE_RECEIVED:
        return EV_CLOSE, ws.close(ws.close_code)
    if ev == EV_BINARY:
        # OCPP-J sends text only (1.6 §4.1.2; 2.0.1 Part 4 §4.1.1).
        frame = ws.close(CLOSE_UNSUPPORTED_DATA, "binary not supported")
        ws.close_code = CLOSE_UNSUPPORTED_DATA
        ws.close_reason = "binary not supported"
        return EV_CLOSE, frame
    return ev, None


async def _open(settings, rng, attempt):
    kw = {}
    if settings.secure:
        kw["ssl"] = settings.tls_context()
        kw["server_hostname"] = settings.host
    reader, writer = await asyncio.open_connection(settings.host, settings.port, **kw)
    conn = Connection(reader, writer)
    attempt.append(conn)
    hs = Handshake(settings.host_header, settings.path, settings.subprotocols, settings.headers, rng)
    attempt.append(hs)
    writer.write(hs.request())
    await writer.drain()
    while True:
        n = await conn._fill()
        if not n:
            raise HandshakeError("connection closed before the upgrade answer")
        if hs.feed(conn._data, n):
            break
    conn.upgraded(WsConnection(max_message=settings.max_message, rng=rng), hs.subprotocol, hs.extra)
    return conn


# Socket errors that mean the peer hung up, rather than could not be reached.
_HUNG_UP = (32, 104)  # EPIPE, ECONNRESET


async def connect(settings, rng=urandom, opener=None):
    """Open TCP (TLS for wss), upgrade, check the answer: a Connection.

    Raises ConnectFailed with a kind (FAIL_*) and a detail that never holds
    the credentials. The whole attempt is bounded by connect_timeout_ms.
    A wss server that hangs up before answering anything at all counts as a
    TLS failure: that is how a refused client certificate looks from here.
    opener(settings, rng, attempt) replaces the stream-based _open (host
    fleets open callback-driven connections; see host_tools/emulator).
    """
    attempt = []
    done = False
    try:
        conn = await asyncio.wait_for((opener or _open)(settings, rng, attempt), settings.connect_timeout_ms / 1000)
        done = True
        return conn
    except HandshakeError as e:
        if e.status and e.status != 101:
            raise ConnectFailed(FAIL_HTTP, e.reason, e.status)
        if settings.secure and _unanswered(attempt):
            raise ConnectFailed(FAIL_TLS, "server hung up during TLS set-up")
        raise ConnectFailed(FAIL_HANDSHAKE, e.reason, e.status)
    except asyncio.TimeoutError:
        raise ConnectFailed(FAIL_TIMEOUT, "no upgrade within the connect timeout")
    except (OSError, ValueError) as e:
        if settings.secure and is_tls_error(e):
            raise ConnectFailed(FAIL_TLS, _describe(e))
        if isinstance(e, ValueError):
            raise
        if settings.secure and e.args and e.args[0] in _HUNG_UP and _unanswered(attempt):
            raise ConnectFailed(FAIL_TLS, "server hung up during TLS set-up")
        raise ConnectFailed(FAIL_CONNECT, _describe(e))
    finally:
        if not done and attempt:
            await attempt[0].shutdown(abort=True)


def _unanswered(attempt):
    return len(attempt) == 2 and not attempt[1].received


def _describe(exc):
    text = str(exc).strip()
    return text if text else type(exc).__name__
