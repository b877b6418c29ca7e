# The connection manager in process (CPython) against real servers, its
# timers on a fake clock: backoff delays, their reset, pings and pongs, stop,
# reconfigure, one connection at a time, no key in any output.
import asyncio
import base64

import pytest

from firmware.net.backoff import Backoff
from firmware.net.manager import Transport
from firmware.net.settings import ConfigError
from tests.integration.netkit import AiohttpServer, FakeTimer, WebsocketsServer, aiohttp_recv_text, eventually

SECRET = "Never-Log-This-Key-5678"


def ones(n):
    return b"\xff" * n


class Recorder:
    def __init__(self):
        self.events = []
        self.changed = asyncio.Event()

    def add(self, *ev):
        self.events.append(ev)
        self.changed.set()

    def callbacks(self):
        return {
            "on_open": lambda sub: self.add("open", sub),
            "on_message": lambda text: self.add("msg", text),
            "on_close": lambda code, reason: self.add("close", code, reason),
            "on_fail": lambda kind, detail: self.add("fail", kind, detail),
        }

    def kinds(self):
        return [e[0] for e in self.events]

    async def wait_for(self, kind, count=1, timeout=10):
        await eventually(lambda: self.kinds().count(kind) >= count, timeout)


def transport(url, rec, timer, **kw):
    cfg = {"url": url, "identity": "CP1", "ping_interval_s": 0, "backoff_min_s": 1, "backoff_base_s": 4, "backoff_max_s": 60, "backoff_reset_s": 30}
    cfg.update(kw)
    return Transport(cfg, timer=timer, rng=kw.pop("rng", ones), **rec.callbacks())


def test_backoff_delays_on_the_fake_clock_within_bounds():
    async def main():
        timer = FakeTimer()
        rec = Recorder()
        # nothing listens there: every attempt fails at once
        t = transport("ws://127.0.0.1:9/ocpp", rec, timer)
        task = asyncio.create_task(t.run())
        delays = []
        for n in range(7):
            await rec.wait_for("fail", n + 1)
            delays.append(await timer.next_wait())
            timer.advance(delays[-1])
        await t.stop()
        await task
        return delays, rec

    delays, rec = asyncio.run(main())
    assert rec.kinds()[0] == "fail" and rec.events[0][1] == "connect"
    # rng all ones: the top of each window; windows 4, 8, 16, 32, 59, 59 s
    ref = Backoff(1000, 4000, 60000, 30000, rng=ones)
    assert delays == [ref.next_delay() for _ in range(7)]
    for n, d in enumerate(delays):
        assert 1000 <= d <= 1000 + min(4000 << n, 59000) and d <= 60000


@pytest.mark.parametrize("up_ms, window", ((10000, 32000), (30000, 4000)))
def test_only_a_stable_connection_restarts_the_backoff_sequence(up_ms, window):
    async def main():
        timer = FakeTimer()
        rec = Recorder()
        drop = asyncio.Event()

        async def behaviour(ws, conn):
            await drop.wait()
            await ws.close(code=1001)

        async with AiohttpServer(behaviour) as srv:
            t = transport(srv.url(), rec, timer)
            t._backoff.attempt = 3  # as after three failed attempts
            task = asyncio.create_task(t.run())
            await rec.wait_for("open")
            timer.advance(up_ms)  # backoff_reset_s is 30 s
            drop.set()
            await rec.wait_for("close")
            delay = await timer.next_wait()
            await t.stop()
            await task
        return delay, rec

    delay, rec = asyncio.run(main())
    assert rec.events[1] == ("close", 1001, "")
    assert delay == 1000 + 0xFFFFFFFF % (window + 1)


def test_pings_on_the_fake_clock_and_a_dead_peer_replaced():
    answer = {"on": True}

    async def behaviour(ws, conn):
        from aiohttp import WSMsgType

        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.PING:
                conn.pings += 1
                if answer["on"]:
                    await ws.pong(msg.data)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR, WSMsgType.CLOSING):
                return

    async def main():
        timer = FakeTimer()
        rec = Recorder()
        async with AiohttpServer(behaviour, autoping=False) as srv:
            t = transport(srv.url(), rec, timer, ping_interval_s=30, pong_timeout_s=10)
            task = asyncio.create_task(t.run())
            await rec.wait_for("open")
            conn = srv.conns[0]
            assert await timer.next_wait() == 30000
            timer.advance(29999)
            await asyncio.sleep(0.05)
            assert conn.pings == 0  # not before the interval
            timer.advance(1)
            await eventually(lambda: conn.pings == 1)
            await eventually(lambda: t._pong.is_set())  # the pong came back
            timer.advance(10000)
            await asyncio.sleep(0.05)
            assert t.connected
            # now the peer stops answering
            answer["on"] = False
            timer.advance(30000)
            await eventually(lambda: conn.pings == 2)
            await eventually(lambda: any(w[2] == 10000 for w in timer.waiting))
            timer.advance(10000)
            await rec.wait_for("close")
            assert rec.events[1] == ("close", 1006, "no pong")
            # the backoff wait, then a new connection
            timer.advance(await timer.next_wait())
            await rec.wait_for("open", 2)
            await srv.wait_conns(2)
            await t.stop()
            await task
            return srv

    srv = asyncio.run(main())
    assert srv.max_live == 1


def test_ping_interval_zero_sends_none_and_can_be_changed():
    async def behaviour(ws, conn):
        await aiohttp_recv_text(ws, conn)

    async def main():
        timer = FakeTimer()
        rec = Recorder()
        async with AiohttpServer(behaviour, autoping=False) as srv:
            t = transport(srv.url(), rec, timer, ping_interval_s=0)
            task = asyncio.create_task(t.run())
            await rec.wait_for("open")
            await timer.next_wait()
            timer.advance(10 * 3600 * 1000)
            await asyncio.sleep(0.05)
            conn = srv.conns[0]
            assert conn.pings == 0
            t.set_ping_interval(5)
            await eventually(lambda: any(w[2] == 5000 for w in timer.waiting))
            timer.advance(5000)
            await eventually(lambda: conn.pings == 1)
            with pytest.raises(ConfigError):
                t.set_ping_interval(-1)
            await t.stop()
            await task

    asyncio.run(main())


def test_stop_closes_with_1000_and_send_needs_a_connection():
    async def behaviour(ws, conn):
        await aiohttp_recv_text(ws, conn)
        await aiohttp_recv_text(ws, conn)

    async def main():
        timer = FakeTimer()
        rec = Recorder()
        async with AiohttpServer(behaviour) as srv:
            t = transport(srv.url(), rec, timer)
            assert await t.send("too early") is False
            task = asyncio.create_task(t.run())
            await rec.wait_for("open")
            assert t.subprotocol == "ocpp1.6"
            assert await t.send('[2,"1","Heartbeat",{}]') is True
            await t.stop()
            await task
            assert await t.send("too late") is False
            await srv.conns[0].ended.wait()
            return srv.conns[0], rec

    conn, rec = asyncio.run(main())
    assert conn.received == ['[2,"1","Heartbeat",{}]']
    assert conn.close_code == 1000
    assert rec.events[-1] == ("close", 1000, "")


def test_reconfigure_reconnects_at_once_and_never_lowers_the_profile():
    async def behaviour(ws, conn):
        await aiohttp_recv_text(ws, conn)

    async def main():
        timer = FakeTimer()
        rec = Recorder()
        async with AiohttpServer(behaviour) as srv:
            cfg = {"url": srv.url(), "identity": "CP1", "security_profile": 1, "authorization_key": "first-key-0123456"}
            t = Transport(cfg, timer=timer, **rec.callbacks())
            task = asyncio.create_task(t.run())
            await rec.wait_for("open")
            with pytest.raises(ConfigError):
                await t.reconfigure({"url": srv.url(), "identity": "CP1", "security_profile": 0})
            assert t.connected
            await t.reconfigure(dict(cfg, authorization_key="second-key-012345"))
            await rec.wait_for("open", 2)  # no backoff wait in between
            await t.stop()
            await task
            return srv

    srv = asyncio.run(main())
    auth = [c.headers["authorization"] for c in srv.conns]
    assert auth == ["Basic " + base64.b64encode(b"CP1:" + k).decode() for k in (b"first-key-0123456", b"second-key-012345")]


def test_run_twice_refused():
    async def main():
        timer = FakeTimer()
        t = transport("ws://127.0.0.1:9/", Recorder(), timer)
        task = asyncio.create_task(t.run())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await t.run()
        await t.stop()
        await task

    asyncio.run(main())


def test_callback_errors_do_not_break_the_transport(capfd):
    async def behaviour(ws, conn):
        await ws.send_str("one")
        await ws.send_str("two")
        await aiohttp_recv_text(ws, conn)

    async def main():
        timer = FakeTimer()
        got = []

        def on_message(text):
            got.append(text)
            raise ValueError("application bug")

        async with AiohttpServer(behaviour) as srv:
            t = Transport({"url": srv.url(), "identity": "CP1"}, timer=timer, on_message=on_message)
            task = asyncio.create_task(t.run())
            await eventually(lambda: len(got) == 2)
            await t.stop()
            await task
        return got

    assert asyncio.run(main()) == ["one", "two"]
    assert "application bug" in capfd.readouterr().out


def test_key_never_in_output_or_failures(capfd, tmp_path):
    async def main():
        timer = FakeTimer()
        rec = Recorder()
        async with AiohttpServer(None, status=401) as srv:
            t = transport(srv.url(), rec, timer, security_profile=1, authorization_key=SECRET)
            task = asyncio.create_task(t.run())
            await rec.wait_for("fail")
            await t.stop()
            await task
        missing_ca = {"url": "wss://localhost:1/", "identity": "CP1", "security_profile": 2,
                      "authorization_key": SECRET, "ca_file": str(tmp_path / "none.pem")}
        with pytest.raises(ConfigError) as e:
            Transport(missing_ca)
        return rec, str(e.value)

    rec, err = asyncio.run(main())
    assert rec.events[0] == ("fail", "http", "HTTP 401 Unauthorized")
    out = capfd.readouterr()
    text = repr(rec.events) + err + out.out + out.err
    for form in (SECRET, base64.b64encode(b"CP1:" + SECRET.encode()).decode()):
        assert form not in text
