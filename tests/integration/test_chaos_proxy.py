# The chaos proxy (host_tools/chaos_proxy.py) between real sockets: an
# aiohttp WebSocket server upstream, raw TCP and aiohttp clients downstream.
# Each fault is checked by the bytes that arrive (or not) at each end.
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from host_tools.chaos_proxy import (
    DOWN,
    U_FRAME,
    U_HEAD,
    U_RAW,
    UP,
    ChaosProxy,
    Splitter,
    identity_of,
    load_replay,
    parse_random,
    parse_rule,
)
from tests.support import repo_root

TIMEOUT = 10.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


class Upstream:
    """aiohttp WebSocket server: records every text message per identity and
    answers "echo:<text>"; text "say:<x>" makes it send <x> twice."""

    def __init__(self):
        self.got = asyncio.Queue()
        self.closed = asyncio.Queue()
        self.runner = None

    async def handle(self, request):
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        ident = request.match_info["cp"]
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            await self.got.put((ident, msg.data))
            if msg.data.startswith("say:"):
                await ws.send_str(msg.data[4:])
                await ws.send_str(msg.data[4:])
            else:
                await ws.send_str("echo:" + msg.data)
        await self.closed.put(ident)
        return ws

    async def __aenter__(self):
        app = web.Application()
        app.router.add_get("/ocpp/{cp}", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()

    async def next(self):
        return await asyncio.wait_for(self.got.get(), TIMEOUT)


def masked(text, key=b"\x01\x02\x03\x04"):
    data = text.encode()
    body = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + key + body


def request_head(ident):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET /ocpp/%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            % (ident, key)).encode()


async def raw_client(proxy, ident="CP1"):
    """A raw TCP WebSocket client: returns (reader, writer, the 101 head)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request_head(ident))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer, head


async def read_to_eof(reader):
    out = b""
    while True:
        chunk = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        if not chunk:
            return out
        out += chunk


async def with_proxy(body, **kw):
    async with Upstream() as up:
        records = []
        proxy = ChaosProxy(("127.0.0.1", up.port), log=records.append, **kw)
        await proxy.start()
        try:
            return await body(up, proxy, records)
        finally:
            await proxy.stop()


def faults(records):
    return [(r["kind"], r["id"], r["conn"], r["dir"], r["unit"]) for r in records if "kind" in r]


# -- units ---------------------------------------------------------------------


def test_splitter_cuts_heads_and_frames_whatever_the_chunking():
    head = request_head("CP%201")
    frames = [masked("a"), masked("b" * 200), masked("c" * 70000), b"\x89\x00"]  # 7-bit, 16-bit, 64-bit, ping
    stream = head + b"".join(frames)
    for step in (1, 3, 7, 1000, len(stream)):
        s = Splitter(response=False)
        units = []
        for i in range(0, len(stream), step):
            units.extend(s.feed(stream[i:i + step]))
        assert [u[0] for u in units] == [U_HEAD] + [U_FRAME] * 4
        assert [u[1] for u in units] == [head] + frames
    assert identity_of(head) == "CP 1"


def test_splitter_relays_a_refused_upgrade_raw():
    s = Splitter(response=True)
    units = s.feed(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\nRefused\x81\x05")
    assert [u[0] for u in units] == [U_HEAD, U_RAW]
    assert units[1][1] == b"Refused\x81\x05"
    ok = Splitter(response=True)
    assert [u[0] for u in ok.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi")] == [U_HEAD, U_FRAME]


def test_specifications_are_checked():
    spec = parse_random({"seed": 3, "probabilities": {"drop": 0.5, "cut": 0.5}, "directions": "up"})
    assert spec["directions"] == [UP] and spec["delay_ms"] == [50, 2000]
    assert parse_random({"units": ["frame"]})["units"] == [U_FRAME]
    for bad in ({"probabilities": {"lose": 0.1}}, {"probabilities": {"drop": 0.6, "cut": 0.6}},
                {"delay_ms": [5, 1]}, {"bogus": 1}, {"units": ["body"]}, {"directions": "sideways"}):
        with pytest.raises(ValueError):
            parse_random(bad)
    assert parse_rule({"at": 5, "kind": "reset"})["form"] == "at"
    assert parse_rule({"from": 1, "until": 2, "kind": "delay", "ms": 100, "dir": "down"})["dirs"] == [DOWN]
    rule = parse_rule({"id": "CP1", "conn": 2, "dir": "up", "unit": 4, "kind": "cut", "params": {"at": 3}})
    assert rule["key"] == ("CP1", 2, "up", 4) and rule["params"] == {"at": 3}
    for bad in ({"kind": "reset"}, {"at": 1, "kind": "explode"}, {"at": -1, "kind": "drop"},
                {"id": "CP1", "unit": 1, "kind": "drop"}, {"from": 3, "until": 1, "kind": "drop"}):
        with pytest.raises(ValueError):
            parse_rule(bad)


# -- faults on real connections ------------------------------------------------------


def test_without_faults_every_frame_passes_in_order():
    async def body(up, proxy, records):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(proxy.url("/ocpp/CP1"), protocols=("ocpp1.6",)) as ws:
                for i in range(20):
                    await ws.send_str("m%d" % i)
                for i in range(20):
                    assert await up.next() == ("CP1", "m%d" % i)
                    assert (await ws.receive(TIMEOUT)).data == "echo:m%d" % i
        assert records[0]["event"] == "start" and faults(records) == []
        assert proxy.stats["connections"] == 1 and proxy.stats["bytes_up"] > 20 * 6
    run(with_proxy(body))


def test_drop_discards_one_frame_and_keeps_the_connection():
    # Unit 0 is the HTTP head; unit 2 is the second frame the client sends.
    rule = {"id": "CP1", "conn": 1, "dir": "up", "unit": 2, "kind": "drop"}

    async def body(up, proxy, records):
        reader, writer, _ = await raw_client(proxy)
        for text in ("one", "two", "three"):
            writer.write(masked(text))
        assert await up.next() == ("CP1", "one")
        assert await up.next() == ("CP1", "three")
        assert faults(records) == [("drop", "CP1", 1, "up", 2)]
        assert records[-1]["opcode"] == 1 and records[-1]["source"] == "replay"
        writer.close()
    run(with_proxy(body, replay=[parse_rule(rule)]))


@pytest.mark.parametrize("kind,expected", [("delay", ["say:a", "b"]), ("reorder", ["b", "say:a"])])
def test_delay_keeps_the_order_and_reorder_lets_later_frames_overtake(kind, expected):
    # The server answers "say:a" with two frames "a"; the first of them is held
    # 300 ms. delay: the second waits behind it; reorder: it overtakes it.
    rule = {"id": "CP1", "conn": 1, "dir": "down", "unit": 1, "kind": kind, "ms": 300}

    async def body(up, proxy, records):
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(proxy.url("/ocpp/CP1"), protocols=("ocpp1.6",)) as ws:
                await ws.send_str("say:a")
                await up.next()
                first = await ws.receive(TIMEOUT)
                await ws.send_str("b")
                got = [first.data]
                for _ in range(2):
                    got.append((await ws.receive(TIMEOUT)).data)
        # delay: "a", "a", then the echo of b; reorder: the second "a" first,
        # the held one after the echo of b was sent.
        if kind == "delay":
            assert got == ["a", "a", "echo:b"]
        else:
            assert got == ["a", "echo:b", "a"]
        assert faults(records) == [(kind, "CP1", 1, "down", 1)]
        assert records[-1]["params"] == {"ms": 300}
    run(with_proxy(body, schedule=[rule]))


def test_cut_relays_part_of_a_frame_then_closes_both_sides():
    rule = {"id": "CP1", "conn": 1, "dir": "down", "unit": 1, "kind": "cut", "at": 3}

    async def body(up, proxy, records):
        reader, writer, _ = await raw_client(proxy)
        writer.write(masked("hello"))
        assert await read_to_eof(reader) == b"\x81\x0ae"  # 3 bytes of [0x81, 10, "echo:hello"]
        assert await asyncio.wait_for(up.closed.get(), TIMEOUT) == "CP1"
        assert records[-1]["params"] == {"at": 3} and records[-1]["bytes"] == 12
        writer.close()
    run(with_proxy(body, schedule=[rule]))


def test_reset_aborts_both_sides_with_rst():
    rule = {"id": "CP1", "conn": 1, "dir": "up", "unit": 1, "kind": "reset"}

    async def body(up, proxy, records):
        reader, writer, _ = await raw_client(proxy)
        writer.write(masked("hello"))
        with pytest.raises(ConnectionResetError):
            await read_to_eof(reader)
        assert await asyncio.wait_for(up.closed.get(), TIMEOUT) == "CP1"
        assert up.got.empty()  # the frame was not relayed
        writer.close()
    run(with_proxy(body, schedule=[rule]))


def test_halfopen_relays_nothing_and_closes_nothing_until_the_hold_ends():
    rule = {"id": "CP1", "conn": 1, "dir": "up", "unit": 1, "kind": "halfopen", "hold_s": 0.5}

    async def body(up, proxy, records):
        reader, writer, _ = await raw_client(proxy)
        writer.write(masked("lost"))
        writer.write(masked("lost too"))  # discarded as well
        # Nothing arrives, then the end of the stream once the hold is over.
        assert await read_to_eof(reader) == b""
        assert await asyncio.wait_for(up.closed.get(), TIMEOUT) == "CP1"
        assert up.got.empty()
        assert faults(records) == [("halfopen", "CP1", 1, "up", 1)]
        writer.close()
    run(with_proxy(body, schedule=[rule]))


def test_timed_entry_resets_every_matching_connection():
    async def body(up, proxy, records):
        clients = [await raw_client(proxy, ident) for ident in ("A1", "A2", "B1")]
        proxy.add_schedule([{"at": proxy.elapsed() + 0.05, "kind": "reset", "match": "A*"}])
        for reader, _, _ in clients[:2]:
            with pytest.raises(ConnectionResetError):
                await read_to_eof(reader)
        reader, writer, _ = clients[2]
        writer.write(masked("still here"))
        assert await up.next() == ("B1", "still here")
        assert sorted(f[1] for f in faults(records)) == ["A1", "A2"]
        for _, w, _ in clients:
            w.close()
    run(with_proxy(body))


def test_upstream_down_resets_the_client():
    async def main():
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        proxy = await ChaosProxy(("127.0.0.1", port)).start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(request_head("CP1"))
            with pytest.raises(ConnectionResetError):
                await read_to_eof(reader)
            assert proxy.stats["upstream_failed"] == 1
        finally:
            await proxy.stop()
    run(main())


def _random_traffic(seed, replay=(), random_spec=None):
    """Two connections of CP1 and one of CP2, 40 frames each; returns the faults."""
    spec = random_spec or {"probabilities": {"drop": 0.2, "delay": 0.1, "reorder": 0.1}, "delay_ms": [1, 20],
                           "reorder_ms": [1, 20], "directions": ["up"], "units": ["frame"]}

    async def body(up, proxy, records):
        for ident in ("CP1", "CP2", "CP1"):
            reader, writer, _ = await raw_client(proxy, ident)
            for i in range(40):
                writer.write(masked("%s-%d" % (ident, i)))
            link = max(proxy.links, key=lambda x: x.number)
            for _ in range(500):  # every frame seen by the proxy (waiting on a condition)
                if link.pipes[0].units == 41:
                    break
                await asyncio.sleep(0.01)
            assert link.pipes[0].units == 41
            writer.close()
        return faults(records)

    return run(with_proxy(body, seed=seed, random=None if replay else spec, replay=replay))


def test_random_faults_follow_the_seed_and_a_log_replays_them():
    first = _random_traffic(7)
    assert first == _random_traffic(7)
    assert first != _random_traffic(8)
    assert {f[0] for f in first} == {"drop", "delay", "reorder"}
    assert {(f[1], f[2]) for f in first} == {("CP1", 1), ("CP2", 1), ("CP1", 2)}
    # The log of a run, given back as replay, injects the same faults (no random mode).
    log = [json.dumps({"kind": k, "id": i, "conn": c, "dir": d, "unit": u, "params": {"ms": 5}})
           for k, i, c, d, u in first]
    assert _random_traffic(99, replay=load_replay(log)) == first


def test_command_line_proxy_relays_and_logs(tmp_path):
    async def main():
        async with Upstream() as up:
            log = tmp_path / "faults.jsonl"
            rules = json.dumps([{"id": "CP1", "conn": 1, "dir": "up", "unit": 1, "kind": "drop"}])
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "host_tools.chaos_proxy", "--upstream", "127.0.0.1:%d" % up.port,
                "--schedule", rules, "--log", str(log), cwd=repo_root(), stdout=subprocess.PIPE)
            try:
                line = {}
                while line.get("event") != "listening":  # after the start record
                    line = json.loads(await asyncio.wait_for(proc.stdout.readline(), TIMEOUT))
                port = int(line["url"].rsplit(":", 1)[1].split("/")[0])

                class P:
                    pass

                p = P()
                p.port = port
                reader, writer, _ = await raw_client(p)
                writer.write(masked("dropped"))
                writer.write(masked("kept"))
                assert await up.next() == ("CP1", "kept")
                writer.close()
            finally:
                proc.terminate()
                await asyncio.wait_for(proc.wait(), TIMEOUT)
            assert proc.returncode == 0
            kinds = [json.loads(x).get("kind") for x in log.read_text().splitlines()]
            assert kinds == [None, "drop", None]  # start record, the fault, stop record
    run(main())
