# The transport against real servers on loopback (aiohttp, websockets, raw
# asyncio), plain and TLS, with the client running on CPython and on the
# MicroPython unix port (tests/integration/ws_client_script.py).
import asyncio
import base64
import hashlib

import pytest
from aiohttp import WSMsgType, web

from tests.fuzz_ws import frame
from tests.integration.netkit import (
    RUNTIMES,
    AiohttpServer,
    RawServer,
    WebsocketsServer,
    aiohttp_recv_text,
    kinds,
    read_request,
    run_client,
    server_tls,
    websockets_recv_text,
)
from tests.integration.pki import make_pki, openssl_available

KEY_HEX = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"
SERVERS = ("aiohttp", "websockets")


def make_server(kind, behaviour, **kw):
    return AiohttpServer(behaviour, **kw) if kind == "aiohttp" else WebsocketsServer(behaviour, **kw)


def is_aiohttp(ws):
    return isinstance(ws, web.WebSocketResponse)


async def srv_send(ws, text):
    await (ws.send_str(text) if is_aiohttp(ws) else ws.send(text))


async def srv_recv(ws, conn):
    return await (aiohttp_recv_text(ws, conn) if is_aiohttp(ws) else websockets_recv_text(ws, conn))


async def srv_close(ws, code, reason=""):
    if is_aiohttp(ws):
        await ws.close(code=code, message=reason.encode())
    else:
        await ws.close(code, reason)


def config(srv, **kw):
    c = {
        "url": srv.url(),
        "identity": "CP1",
        "connect_timeout_s": 5,
        "close_timeout_s": 2,
        "backoff_min_s": 0,
        "backoff_base_s": 0.05,
        "ping_interval_s": 0,
    }
    c.update(kw)
    return c


def client(runtime, srv_or_cfg, timeout=20, **opts):
    cfg = srv_or_cfg if isinstance(srv_or_cfg, dict) else config(srv_or_cfg)
    opts["config"] = cfg
    return run_client(runtime, opts, timeout=timeout)


# -- plain ws ----------------------------------------------------------------


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_subprotocol_agreed_basic_auth_echo_and_server_close(runtime, kind):
    async def behaviour(ws, conn):
        await srv_send(ws, '[2,"1","Reset",{"type":"Soft"}]')
        await srv_recv(ws, conn)
        await srv_close(ws, 4001, "bye")

    async def main():
        async with make_server(kind, behaviour, protocols=["ocpp2.0.1"]) as srv:
            cfg = config(
                srv,
                identity="CP 1/é",
                subprotocols=["ocpp1.6", "ocpp2.0.1"],
                security_profile=1,
                authorization_key=KEY_HEX,
            )
            return await client(runtime, cfg, echo=True), srv

    events, srv = asyncio.run(main())
    assert kinds(events) == ["open", "msg", "close", "exit"], events
    assert events[0]["sub"] == "ocpp2.0.1"
    assert events[2] == {"ev": "close", "code": 4001, "reason": "bye"}
    conn = srv.conns[0]
    assert conn.received == ['echo:[2,"1","Reset",{"type":"Soft"}]']
    assert conn.path == "/ocpp/CP%201%2F%C3%A9"
    # exactly: Basic base64(<identity>:<key bytes>) (security whitepaper §2.3,
    # OCPP-J 1.6 §6.2.2), the preferred subprotocol being ocpp1.6
    want = "Basic " + base64.b64encode("CP 1/é".encode() + b":" + bytes.fromhex(KEY_HEX)).decode()
    assert conn.headers["authorization"] == want
    assert conn.close_code == 4001


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_subprotocol_refused(runtime, kind):
    async def behaviour(ws, conn):
        await srv_recv(ws, conn)

    async def main():
        async with make_server(kind, behaviour, protocols=["ocpp2.1"]) as srv:
            return await client(runtime, config(srv, subprotocols=["ocpp1.6"])), srv

    events, srv = asyncio.run(main())
    assert events[0] == {"ev": "fail", "kind": "handshake", "detail": "server agreed to no subprotocol"}, events
    assert kinds(events) == ["fail", "exit"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fragmented_message_from_websockets(runtime):
    async def behaviour(ws, conn):
        await ws.send(['[2,"7",', '"Heartbeat",', "{}]"])  # three frames
        await srv_recv(ws, conn)
        await srv_close(ws, 1000)

    async def main():
        async with WebsocketsServer(behaviour) as srv:
            return await client(runtime, srv, echo=True), srv

    events, srv = asyncio.run(main())
    assert events[1] == {"ev": "msg", "text": '[2,"7","Heartbeat",{}]'}, events
    assert srv.conns[0].received == ['echo:[2,"7","Heartbeat",{}]']


def accept(key):
    return base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()


def upgrade_answer(headers, accept_value=None, proto="ocpp1.6"):
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + (accept_value or accept(headers["sec-websocket-key"])),
        "Sec-WebSocket-Protocol: " + proto,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_client_frame(reader):
    """(opcode, payload) of one masked client frame."""
    b0, b1 = await reader.readexactly(2)
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    key = await reader.readexactly(4)
    body = await reader.readexactly(n)
    return b0 & 0x0F, bytes(body[i] ^ key[i & 3] for i in range(n))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_control_frames_between_fragments(runtime):
    seen = []

    async def handler(srv, reader, writer):
        _, headers = await read_request(reader)
        writer.write(upgrade_answer(headers))
        writer.write(frame(1, b"[2,", fin=False) + frame(9, b"p1") + frame(0, b'"8",', fin=False))
        writer.write(frame(9, b"p2") + frame(0, b'"Heartbeat",{}]'))
        await writer.drain()
        for _ in range(3):
            seen.append(await read_client_frame(reader))
        writer.write(frame(8, b"\x03\xe8"))
        await writer.drain()
        seen.append(await read_client_frame(reader))

    async def main():
        async with RawServer(handler) as srv:
            return await client(runtime, {"url": srv.url(), "identity": "CP1", "ping_interval_s": 0}, echo=True)

    events = asyncio.run(main())
    assert events[1] == {"ev": "msg", "text": '[2,"8","Heartbeat",{}]'}, events
    assert seen == [(10, b"p1"), (10, b"p2"), (1, b'echo:[2,"8","Heartbeat",{}]'), (8, b"\x03\xe8")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_bad_sec_websocket_accept_refused(runtime):
    async def handler(srv, reader, writer):
        _, headers = await read_request(reader)
        writer.write(upgrade_answer(headers, accept_value=accept("not the key sent")))
        await writer.drain()
        await reader.read()

    async def main():
        async with RawServer(handler) as srv:
            return await client(runtime, {"url": srv.url(), "identity": "CP1"})

    events = asyncio.run(main())
    assert events[0] == {"ev": "fail", "kind": "handshake", "detail": "wrong Sec-WebSocket-Accept"}, events


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_connect_timeout(runtime):
    async def handler(srv, reader, writer):
        await read_request(reader)
        await reader.read()  # never answers

    async def main():
        async with RawServer(handler) as srv:
            return await client(runtime, {"url": srv.url(), "identity": "CP1", "connect_timeout_s": 0.3})

    events = asyncio.run(main())
    assert events[0]["ev"] == "fail" and events[0]["kind"] == "timeout", events


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_server_ping_answered(runtime, kind):
    result = {}

    async def behaviour(ws, conn):
        if is_aiohttp(ws):
            await ws.ping(b"srv")
            msg = await ws.receive()
            result["pong"] = (msg.type, msg.data)
        else:
            waiter = await ws.ping(b"srv")
            await asyncio.wait_for(waiter, 5)
            result["pong"] = (WSMsgType.PONG, b"srv")
        await srv_close(ws, 1000)

    async def main():
        kw = {"autoping": False} if kind == "aiohttp" else {}
        async with make_server(kind, behaviour, **kw) as srv:
            return await client(runtime, srv)

    events = asyncio.run(main())
    assert result["pong"] == (WSMsgType.PONG, b"srv")
    assert kinds(events) == ["open", "close", "exit"], events


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_missing_pong_replaces_the_connection(runtime):
    async def behaviour(ws, conn):
        await aiohttp_recv_text(ws, conn)  # counts pings, answers none

    async def main():
        async with AiohttpServer(behaviour, autoping=False) as srv:
            cfg = config(srv, ping_interval_s=0.2, pong_timeout_s=0.3)
            return await client(runtime, cfg, closes=2), srv

    events, srv = asyncio.run(main())
    assert kinds(events) == ["open", "close", "open", "close", "exit"], events
    assert events[1] == {"ev": "close", "code": 1006, "reason": "no pong"}
    assert len(srv.conns) >= 2 and srv.conns[0].pings >= 1
    assert srv.max_live == 1  # one connection at a time


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_answered_pings_keep_the_connection(runtime):
    async def behaviour(ws, conn):
        await asyncio.sleep(1.0)  # several ping intervals, each answered
        await srv_close(ws, 1000)

    async def main():
        async with WebsocketsServer(behaviour) as srv:
            return await client(runtime, config(srv, ping_interval_s=0.1, pong_timeout_s=0.5)), srv

    events, srv = asyncio.run(main())
    assert kinds(events) == ["open", "close", "exit"], events
    assert events[1]["code"] == 1000


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_message_over_max_size_closes_1009(runtime, kind):
    async def behaviour(ws, conn):
        await srv_send(ws, "x" * 3000)
        await srv_recv(ws, conn)

    async def main():
        async with make_server(kind, behaviour) as srv:
            return await client(runtime, config(srv, max_message=2000)), srv

    events, srv = asyncio.run(main())
    assert events[1] == {"ev": "close", "code": 1009, "reason": "message too big"}, events
    assert srv.conns[0].close_code == 1009


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_binary_message_closes_1003(runtime):
    async def behaviour(ws, conn):
        await ws.send(b"\x00\x01")
        await srv_recv(ws, conn)

    async def main():
        async with WebsocketsServer(behaviour) as srv:
            return await client(runtime, srv), srv

    events, srv = asyncio.run(main())
    assert events[1] == {"ev": "close", "code": 1003, "reason": "binary not supported"}, events
    assert srv.conns[0].close_code == 1003


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_http_refusal_reported_without_the_key(runtime):
    secret = "Do-Not-Log-This-Key-1234"

    async def main():
        async with AiohttpServer(None, status=401) as srv:
            cfg = config(srv, security_profile=1, authorization_key=secret)
            return await client(runtime, cfg)

    events = asyncio.run(main())
    assert events[0] == {"ev": "fail", "kind": "http", "detail": "HTTP 401 Unauthorized"}, events
    text = repr(events)
    for form in (secret, base64.b64encode(b"CP1:" + secret.encode()).decode()):
        assert form not in text


# -- TLS (security profiles 2 and 3) -------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not openssl_available():
        pytest.skip("openssl command line not found")
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def tls_config(srv, pki, profile=2, client_cert=None, host="localhost"):
    c = config(srv, security_profile=profile, authorization_key="sixteen-chars-key", ca_file=pki["ca"][0])
    c["url"] = srv.url(host=host)
    if client_cert:
        c["client_cert_file"], c["client_key_file"] = pki[client_cert]
    return c


async def echo_once(ws, conn):
    await srv_send(ws, "over tls " + "y" * 5000)
    await srv_recv(ws, conn)
    await srv_close(ws, 1000)


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_profile_2_verifies_the_server(runtime, kind, pki):
    async def main():
        async with make_server(kind, echo_once, ssl_context=server_tls(pki)) as srv:
            return await client(runtime, tls_config(srv, pki), echo=True), srv

    events, srv = asyncio.run(main())
    assert kinds(events) == ["open", "msg", "close", "exit"], events
    assert srv.conns[0].received == ["echo:over tls " + "y" * 5000]
    assert srv.conns[0].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize("name", ("server_rogue", "server_wrong_host"))
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_wrong_server_certificate_refused(runtime, name, pki):
    async def main():
        async with AiohttpServer(echo_once, ssl_context=server_tls(pki, name)) as srv:
            return await client(runtime, tls_config(srv, pki)), srv

    events, srv = asyncio.run(main())
    assert events[0]["ev"] == "fail" and events[0]["kind"] == "tls", events
    assert srv.conns == []


@pytest.mark.parametrize("kind", SERVERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_mutual_tls_only_with_the_client_certificate(runtime, kind, pki):
    async def main():
        out = {}
        async with make_server(kind, echo_once, ssl_context=server_tls(pki, client_ca="ca")) as srv:
            out["good"] = await client(runtime, tls_config(srv, pki, 3, "client"), echo=True)
            out["rogue"] = await client(runtime, tls_config(srv, pki, 3, "client_rogue"))
            # profile 2 offers no client certificate at all
            out["none"] = await client(runtime, tls_config(srv, pki, 2))
        return out, srv

    out, srv = asyncio.run(main())
    assert kinds(out["good"]) == ["open", "msg", "close", "exit"], out["good"]
    assert out["rogue"][0]["ev"] == "fail" and out["rogue"][0]["kind"] == "tls", out["rogue"]
    assert out["none"][0]["ev"] == "fail" and out["none"][0]["kind"] == "tls", out["none"]
    assert len(srv.conns) == 1
    assert "authorization" not in srv.conns[0].headers  # profile 3: the certificate is the credential
