"""The whole agent under the `micropython` binary (the unix port), from its
sources and from the .mpy files host_tools/flash.py compiles, on the unix
board's simulated parts, against the bench CSMS on loopback. The session is
driven through the bench console over TCP, as on a bench: plug, card, charge,
stop; the CSMS must hold the session the same agent code gives on CPython."""

import shutil

import pytest

from host_tools import flash
from host_tools.csms import start_csms
from tests.integration.agentkit import ThreadLoop, free_port, micropython_agent, until, wait_event
from tests.support import repo_root

TAG = "04A2B3C4D5"
# The device tree plus the simulated parts and the two boards they need.
FILES = flash.firmware_files(include_host_only=True) + flash.board_files() + ["boards/host.py", "boards/unix.py"]


@pytest.fixture(scope="module")
def csms():
    tl = ThreadLoop()
    server = tl.run(start_csms(host="127.0.0.1", port=0, db_path=":memory:", id_tags={TAG: "Accepted"}, call_timeout=5.0))
    yield tl, server
    tl.run(server.stop())
    tl.close()


@pytest.fixture(scope="module")
def mpy_tree():
    path = flash.compiled_tree(FILES)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_agent(form, tree, identity, ws_url, tmp_path, extra=()):
    port = free_port()
    args = [
        "--board", "unix",
        "--csms", ws_url,
        "--id", identity,
        "--state-dir", str(tmp_path / "state"),
        "--console", "tcp:127.0.0.1:%d" % port,
        "--set", "MeterValueSampleInterval=1",
    ] + list(extra)  # fmt: skip
    cwd = repo_root() if form == "source" else tree
    proc = micropython_agent(cwd, args, str(tmp_path / "agent.log"))
    return proc, "socket://127.0.0.1:%d" % port


@pytest.mark.parametrize("form", ["source", "mpy"])
def test_a_whole_session_on_micropython(form, csms, mpy_tree, tmp_path):
    tl, server = csms
    identity = "MP-" + form
    proc, url = start_agent(form, mpy_tree, identity, server.ws_url, tmp_path)
    try:
        con = proc.console(url)
        with con:
            until(lambda: con.cmd("status")["boot"] == "accepted", what="BootNotification accepted")
            mem = con.cmd("mem")
            assert mem["alloc"] > 0 and mem["free"] > 0  # gc figures: this is MicroPython
            con.cmd("plug")
            con.cmd("card " + TAG)  # through the simulated PN532 and the real driver
            started = wait_event(con, "transaction_started", idTag=TAG)
            con.cmd("charge")
            wait_event(con, "status", status="Charging")

            def charging_tx():
                rows = tl.call(server.storage.active_transactions, identity)
                return rows[0] if rows else None

            tx = until(charging_tx, what="the transaction at the CSMS")
            until(lambda: len(_energy(tl, server, tx["id"])) >= 3, what="three meter values")
            con.cmd("stop")
            stopped = wait_event(con, "transaction_stopped", reason="Local")
            con.cmd("unplug")
            wait_event(con, "status", status="Available")
            done = until(lambda: _stopped(tl, server, identity), what="the stopped session at the CSMS")
    except BaseException:
        print(proc.tail())
        raise
    finally:
        proc.stop()
    assert done["id_tag"] == TAG and done["connector_id"] == 1
    assert done["meter_start"] == started["meterStart"]
    assert done["meter_stop"] == stopped["meterStop"] > done["meter_start"]
    assert done["stop_reason"] == "Local"
    energy = [float(v) for v in _energy(tl, server, done["id"])]
    assert len(energy) >= 3 and energy == sorted(energy) and energy[-1] <= done["meter_stop"]


def _energy(tl, server, tx_id):
    rows = tl.call(server.storage.meter_values, tx_id)
    return [r["value"] for r in rows if r["measurand"] in (None, "Energy.Active.Import.Register")]


def _stopped(tl, server, identity):
    rows = tl.call(server.storage.list_transactions, identity, "stopped")
    return rows[0] if rows else None
