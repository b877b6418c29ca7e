# Helpers for the transport's integration tests: real WebSocket servers on
# loopback (aiohttp, websockets, raw asyncio), a fake timer for the
# connection manager, and a runner for the client script on either runtime.
import asyncio
import json
import os
import ssl
import sys
import tempfile

from aiohttp import WSMsgType, web
from websockets.asyncio.server import serve as ws_serve

from tests.support import micropython_binary, repo_root

SCRIPT = os.path.join("tests", "integration", "ws_client_script.py")


class Conn:
    """What a server saw of one connection."""

    def __init__(self, path, headers, protocol):
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.protocol = protocol
        self.received = []  # text messages
        self.pings = 0
        self.pongs = 0
        self.close_code = None
        self.ended = asyncio.Event()


class Server:
    """Common part: records connections; `behaviour(ws, conn)` drives each."""

    def __init__(self, behaviour, protocols=("ocpp1.6",), ssl_context=None):
        self.behaviour = behaviour
        self.protocols = list(protocols)
        self.ssl = ssl_context
        self.conns = []
        self.live = 0
        self.max_live = 0
        self.new_conn = asyncio.Event()
        self.port = None

    @property
    def scheme(self):
        return "wss" if self.ssl else "ws"

    def url(self, host="localhost", path="/ocpp"):
        return "%s://%s:%d%s" % (self.scheme, host, self.port, path)

    def _opened(self, conn):
        self.conns.append(conn)
        self.live += 1
        self.max_live = max(self.max_live, self.live)
        self.new_conn.set()

    def _closed(self, conn):
        self.live -= 1
        conn.ended.set()

    async def wait_conns(self, n, timeout=10):
        async def until():
            while len(self.conns) < n:
                self.new_conn.clear()
                await self.new_conn.wait()

        await asyncio.wait_for(until(), timeout)
        return self.conns[n - 1]

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.stop()


class AiohttpServer(Server):
    """aiohttp's WebSocketResponse; ws is the response object."""

    def __init__(self, behaviour, autoping=True, status=None, **kw):
        super().__init__(behaviour, **kw)
        self.autoping = autoping
        self.status = status  # answer this HTTP status instead of upgrading

    async def _handle(self, request):
        if self.status:
            return web.Response(status=self.status, text="refused")
        ws = web.WebSocketResponse(protocols=self.protocols, autoping=self.autoping, max_msg_size=0)
        await ws.prepare(request)
        conn = Conn(request.path_qs, dict(request.headers), ws.ws_protocol)
        self._opened(conn)
        ws.conn = conn
        try:
            await self.behaviour(ws, conn)
        finally:
            if not ws.closed:
                await ws.close()
            conn.close_code = ws.close_code if conn.close_code is None else conn.close_code
            self._closed(conn)
        return ws

    async def start(self):
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self):
        await self._runner.cleanup()


async def aiohttp_recv_text(ws, conn):
    """Next text message from an aiohttp connection (records pings/pongs)."""
    while True:
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT:
            conn.received.append(msg.data)
            return msg.data
        if msg.type == WSMsgType.PING:
            conn.pings += 1
        elif msg.type == WSMsgType.PONG:
            conn.pongs += 1
        elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            conn.close_code = ws.close_code
            return None


class WebsocketsServer(Server):
    """The websockets library's asyncio server; ws is its ServerConnection."""

    async def _handle(self, ws):
        conn = Conn(ws.request.path, dict(ws.request.headers), ws.subprotocol)
        self._opened(conn)
        ws.conn = conn
        try:
            await self.behaviour(ws, conn)
        except Exception:
            pass
        finally:
            await ws.wait_closed()
            if conn.close_code is None and ws.close_code is not None:
                conn.close_code = ws.close_code
            self._closed(conn)

    def _select(self, connection, offered):
        # Like an OCPP CSMS (OCPP-J 1.6 §3.2): no common subprotocol, then
        # upgrade without one and let the client decide, not HTTP 400.
        for p in offered:
            if p in self.protocols:
                return p
        return None

    async def start(self):
        self._server = await ws_serve(
            self._handle,
            "127.0.0.1",
            0,
            select_subprotocol=self._select,
            ssl=self.ssl,
            max_size=None,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        self._server.close()
        await self._server.wait_closed()


async def websockets_recv_text(ws, conn):
    try:
        msg = await ws.recv()
    except Exception:
        conn.close_code = ws.close_code
        return None
    conn.received.append(msg)
    return msg


class RawServer:
    """A plain TCP server: handler(reader, writer) answers as it likes."""

    def __init__(self, handler):
        self.handler = handler
        self.requests = []

    async def _handle(self, reader, writer):
        try:
            await self.handler(self, reader, writer)
        except Exception:
            pass
        finally:
            writer.close()

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        await self._server.wait_closed()

    def url(self, path="/ocpp"):
        return "ws://127.0.0.1:%d%s" % (self.port, path)


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def server_tls(pki, name="server", client_ca=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*pki[name])
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki[client_ca][0])
    return ctx


# -- the client script on either runtime ------------------------------------

RUNTIMES = ("cpython", "micropython")


def runtime_command(runtime):
    if runtime == "micropython":
        return [micropython_binary(), "-X", "heapsize=2M"]
    return [sys.executable, "-u"]


async def run_client(runtime, opts, until=None, timeout=20):
    """Run the client script; returns its events (dicts). `until(events)`
    may say when to stop reading early (the process is then killed)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(opts, f)
    proc = await asyncio.create_subprocess_exec(
        *runtime_command(runtime),
        SCRIPT,
        path,
        cwd=repo_root(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    events = []
    try:

        async def read():
            while True:
                line = await proc.stdout.readline()
                if not line:
                    return
                line = line.decode().strip()
                if line.startswith("{"):
                    events.append(json.loads(line))
                if until is not None and until(events):
                    return

        await asyncio.wait_for(read(), timeout)
    finally:
        if proc.returncode is None:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
        stderr = await proc.stderr.read()
        await proc.wait()
        os.unlink(path)
    if stderr.strip():
        events.append({"ev": "stderr", "text": stderr.decode(errors="replace")})
    return events


def kinds(events):
    return [e["ev"] for e in events]


class FakeTimer:
    """The manager's timer on a clock that moves only when told (advance)."""

    def __init__(self):
        self.ms = 0
        self.waiting = []  # [deadline, private event, requested ms]
        self.requested = []
        self.changed = asyncio.Event()

    def now(self):
        return self.ms

    async def wait(self, event, ms):
        if event.is_set():
            return True
        entry = [self.ms + ms, asyncio.Event(), ms]
        self.waiting.append(entry)
        self.requested.append(ms)
        self.changed.set()
        a = asyncio.ensure_future(event.wait())
        b = asyncio.ensure_future(entry[1].wait())
        try:
            await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            a.cancel()
            b.cancel()
            if entry in self.waiting:
                self.waiting.remove(entry)
            self.changed.set()
        return event.is_set()

    def advance(self, ms):
        self.ms += ms
        for entry in list(self.waiting):
            if entry[0] <= self.ms:
                entry[1].set()

    async def next_wait(self, timeout=10):
        """Wait until some wait is registered; returns its requested ms."""

        async def until():
            while not self.waiting:
                self.changed.clear()
                await self.changed.wait()
            return self.waiting[-1][2]

        return await asyncio.wait_for(until(), timeout)


async def eventually(cond, timeout=10):
    """Wait (on the event loop) until cond() holds."""

    async def until():
        while not cond():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(until(), timeout)
