# The only code that awaits sockets: TCP (and TLS) through asyncio streams,
# the same calls on MicroPython and CPython, driving the sans-I/O handshake
# and framing objects.
import asyncio

from firmware.compat import is_tls_error, urandom, wire
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


class ConnectFailed(Exception):
    def __init__(self, kind, detail, status=0):
        Exception.__init__(self, kind + ": " + detail)
        self.kind = kind
        self.detail = detail
        self.status = status


class Connection:
    """One open WebSocket: read events, send frames. Writes are serialised."""

    def __init__(self, reader, writer, ws, subprotocol, leftover=b""):
        self.reader = reader
        self.writer = writer
        self.ws = ws
        self.subprotocol = subprotocol
        self._lock = asyncio.Lock()
        self._readinto = hasattr(reader, "readinto")  # MicroPython streams
        self._rx = bytearray(_RX)
        if leftover:
            ws.feed(leftover)

    async def _write(self, frame):
        if frame is None:
            return False
        async with self._lock:
            try:
                self.writer.write(wire(frame))
                await self.writer.drain()
            except OSError:
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
            except OSError:
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
        """The next event for the application: EV_TEXT (ws.data), EV_BINARY,
        EV_PONG or EV_CLOSE (ws.close_code, ws.close_reason; the connection is
        then finished). Pings are answered here; the peer's close is echoed,
        a protocol fault is answered with its close code."""
        ws = self.ws
        while True:
            try:
                ev = ws.next_event()
            except ParseFailed as e:
                await self._write(ws.close(e.code, e.reason))
                return EV_CLOSE
            if ev is None:
                if not await self._read():
                    ev = ws.lost()
                    if ev is None:
                        return EV_CLOSE
                    return ev
                continue
            if ev == EV_PING:
                await self._write(ws.pong(ws.data))
                continue
            if ev == EV_CLOSE and ws.state == ST_CLOSE_RECEIVED:
                await self._write(ws.close(ws.close_code))
            elif ev == EV_BINARY:
                # OCPP-J sends text only (1.6 §4.1.2; 2.0.1 Part 4 §4.1.1).
                await self._write(ws.close(CLOSE_UNSUPPORTED_DATA, "binary not supported"))
                ws.close_code = CLOSE_UNSUPPORTED_DATA
                ws.close_reason = "binary not supported"
                return EV_CLOSE
            return ev

    async def _read(self):
        try:
            if self._readinto:
                while True:
                    n = await self.reader.readinto(self._rx)
                    if n is not None:
                        break
                if n:
                    self.ws.feed(self._rx, n)
            else:
                data = await self.reader.read(_RX)
                n = len(data)
                if n:
                    self.ws.feed(data)
        except OSError:
            return False
        return n > 0

    async def shutdown(self, abort=False):
        """Drop the TCP connection (abort: without flushing, for a dead peer)."""
        w = self.writer
        transport = getattr(w, "transport", None)
        if abort and transport is not None:
            transport.abort()
            return
        try:
            w.close()
            await asyncio.wait_for(w.wait_closed(), 2)
        except Exception:
            if transport is not None:
                transport.abort()


async def _open(settings, rng, on_stream):
    kw = {}
    if settings.secure:
        kw["ssl"] = settings.tls_context()
        kw["server_hostname"] = settings.host
    reader, writer = await asyncio.open_connection(settings.host, settings.port, **kw)
    on_stream(writer)
    hs = Handshake(settings.host_header, settings.path, settings.subprotocols, settings.headers, rng)
    writer.write(hs.request())
    await writer.drain()
    readinto = hasattr(reader, "readinto")
    buf = bytearray(_RX)
    while True:
        if readinto:
            n = await reader.readinto(buf)
            if n is None:
                continue
            data = buf
        else:
            data = await reader.read(_RX)
            n = len(data)
        if not n:
            raise HandshakeError("connection closed during the handshake")
        if hs.feed(data, n):
            break
    ws = WsConnection(max_message=settings.max_message, rng=rng)
    return Connection(reader, writer, ws, hs.subprotocol, hs.extra)


async def connect(settings, rng=urandom):
    """Open TCP (TLS for wss), upgrade, check the answer: a Connection.

    Raises ConnectFailed with a kind (FAIL_*) and a detail that never holds
    the credentials. The whole attempt is bounded by connect_timeout_ms.
    """
    streams = []
    conn = None
    try:
        conn = await asyncio.wait_for(_open(settings, rng, streams.append), settings.connect_timeout_ms / 1000)
        return conn
    except HandshakeError as e:
        if e.status and e.status != 101:
            raise ConnectFailed(FAIL_HTTP, e.reason, e.status)
        raise ConnectFailed(FAIL_HANDSHAKE, e.reason, e.status)
    except asyncio.TimeoutError:
        raise ConnectFailed(FAIL_TIMEOUT, "no upgrade within the connect timeout")
    except OSError as e:
        kind = FAIL_TLS if settings.secure and is_tls_error(e) else FAIL_CONNECT
        raise ConnectFailed(kind, _describe(e))
    finally:
        if conn is None:
            for w in streams:
                await _drop(w)


def _describe(exc):
    text = str(exc)
    return text if text else type(exc).__name__


async def _drop(writer):
    transport = getattr(writer, "transport", None)
    try:
        if transport is not None:
            transport.abort()
        else:
            await writer.wait_closed()  # MicroPython: closes the socket at once
    except Exception:
        pass
