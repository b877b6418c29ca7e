"""Offline cases of the OCPP 1.6 Compliancy Testing Tool (Core profile,
C16 §3.7 transaction-related messages) with the real agent (firmware.agent,
its journal with fsync) against a Central System written on the `ocpp`
package, over a real WebSocket that goes down and comes back.

The agent's clock is injected (tests/integration/offline_kit.py): meter
samples and timestamps follow it exactly; the network runs in real time and
the tests wait for frames, never for time. Each test is named after the
OCTT case it mirrors.
"""
import asyncio

import pytest

from tests.integration.offline_kit import FIRST_TX_ID, TAG, Csms, Rig, epoch_ms, payload

SAMPLE = {"MeterValueSampleInterval": 10}
TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")


def run(coro):
    asyncio.run(coro)


async def booted(tmp_path, ocpp=None):
    csms = await Csms().start()
    rig = Rig(tmp_path / "state", csms, ocpp)
    await rig.start()
    await rig.wait_online()
    await rig.settle()
    return csms, rig


async def charging(csms, rig):
    """Reusable State Charging: plugged, authorized online, StartTransaction answered."""
    rig.plug_and_charge()
    await csms.wait_calls("StartTransaction", len(csms.calls("StartTransaction")) + 1)
    await rig.wait_until(lambda: rig.agent.store.state.transaction_id(rig.agent.cp.connectors[1].tx.local_id) is not None)
    await rig.settle()


async def go_offline(csms, rig):
    await csms.stop()
    await rig.wait_offline()


async def reconnect(csms, rig):
    await csms.start()
    await rig.wait_online()


def assert_one_in_flight(test_calls, csms):
    """Each CALL arrived only after the CSMS answered the one before (J16 §4.1.1)."""
    for prev, nxt in zip(test_calls, test_calls[1:]):
        answer = csms.answer_to(prev["msg"][1])
        assert answer is not None, "no answer to %r" % (prev["msg"],)
        assert answer["t"] <= nxt["t"], "%s arrived before %s was answered" % (nxt["msg"][2], prev["msg"][2])


def energy(mv):
    return float(mv["meterValue"][0]["sampledValue"][0]["value"])


def test_TC_036_CS_connection_loss_during_transaction(tmp_path):
    """Connection Loss During Transaction: samples taken offline are delivered
    on reconnect, in order, MeterValueSampleInterval apart, with the
    transactionId; no new BootNotification (J16 §5.4)."""

    async def main():
        csms, rig = await booted(tmp_path, SAMPLE)
        await charging(csms, rig)
        before = len(csms.calls())
        await go_offline(csms, rig)
        frames = len(rig.frames())
        rig.advance(35000, step_ms=1000)
        assert len(rig.frames()) == frames  # offline: nothing goes out, no try is spent
        queued = rig.agent.store.state.order
        assert [rig.agent.store.state.msgs[s][0] for s in queued] == ["MeterValues"] * 3  # on disk
        await reconnect(csms, rig)
        await csms.wait_calls("MeterValues", 3)
        await rig.settle()
        after = csms.calls()[before:]
        assert [c["msg"][2] for c in after if c["msg"][2] != "StatusNotification"] == ["MeterValues"] * 3
        mvs = [payload(c) for c in after if c["msg"][2] == "MeterValues"]
        assert [m["transactionId"] for m in mvs] == [FIRST_TX_ID] * 3
        stamps = [epoch_ms(m["meterValue"][0]["timestamp"]) for m in mvs]
        assert [b - a for a, b in zip(stamps, stamps[1:])] == [10000, 10000]
        assert energy(mvs[0]) < energy(mvs[1]) < energy(mvs[2])  # 7.2 kW: 20 Wh per sample
        assert all(sv["context"] == "Sample.Periodic" for m in mvs for sv in m["meterValue"][0]["sampledValue"])
        assert len(csms.calls("BootNotification")) == 1
        assert_one_in_flight([c for c in after], csms)
        assert rig.agent.store.state.order == []
        await rig.stop()
        await csms.stop()

    run(main())


def test_TC_037_1_CS_offline_start_transaction_valid_idtag(tmp_path):
    """Offline Start Transaction - Valid IdTag: the idTag is in the
    authorization cache, LocalAuthorizeOffline; the session starts offline and
    its StartTransaction, with the time and meterStart of the start, goes out
    on reconnect before the samples, which carry the transactionId given."""

    async def main():
        csms, rig = await booted(tmp_path, SAMPLE)
        rig.present()  # online: Authorize, Accepted, cached
        await csms.wait_calls("Authorize", 1)
        await rig.settle()
        rig.advance(61000, step_ms=1000)  # no cable within ConnectionTimeOut: the authorization lapses
        await go_offline(csms, rig)
        rig.plug_and_charge()
        started = rig.events("transaction_started")
        assert len(started) == 1  # offline, from the cache
        t_start = rig.mono.t
        rig.advance(25000, step_ms=1000)
        await reconnect(csms, rig)
        await csms.wait_calls("MeterValues", 2)
        await rig.settle()
        tx = [c for c in csms.tx_calls()]
        assert [c["msg"][2] for c in tx] == ["StartTransaction", "MeterValues", "MeterValues"]
        start = payload(tx[0])
        assert (start["idTag"], start["connectorId"], start["meterStart"]) == (TAG, 1, started[0]["meterStart"])
        mv_stamp = epoch_ms(payload(tx[1])["meterValue"][0]["timestamp"])
        assert mv_stamp - epoch_ms(start["timestamp"]) == rig.mono.t - t_start - 15000  # the start time, not the send time
        assert [payload(c)["transactionId"] for c in tx[1:]] == [FIRST_TX_ID] * 2
        assert_one_in_flight(tx, csms)
        # The session carries on online.
        rig.present()
        await csms.wait_calls("StopTransaction", 1)
        assert payload(csms.calls("StopTransaction")[0])["transactionId"] == FIRST_TX_ID
        await rig.stop()
        await csms.stop()

    run(main())


@pytest.mark.parametrize("stop_on_invalid", [False, True], ids=["TC_037_2", "TC_037_3"])
def test_TC_037_2_and_3_CS_offline_start_transaction_invalid_idtag(tmp_path, stop_on_invalid):
    """Offline Start Transaction - Invalid IdTag: started offline for an
    unknown idTag (AllowOfflineTxForUnknownId), answered Invalid on
    reconnect. StopTransactionOnInvalidId false: the energy stops and the
    connector reports SuspendedEVSE (TC_037_2); true: the transaction stops
    with reason DeAuthorized (TC_037_3) (C16 §4.8)."""

    async def main():
        csms, rig = await booted(tmp_path, dict(SAMPLE, AllowOfflineTxForUnknownId=True,
                                                StopTransactionOnInvalidId=stop_on_invalid))
        csms.tags = {}
        await go_offline(csms, rig)
        rig.plug_and_charge()
        rig.advance(12000, step_ms=1000)
        await reconnect(csms, rig)
        await csms.wait_calls("MeterValues", 1)
        if stop_on_invalid:
            await csms.wait_calls("StopTransaction", 1)
        else:
            await csms.wait(lambda: (1, "SuspendedEVSE", "NoError") in csms.statuses)
        await rig.settle()
        tx = csms.tx_calls()
        names = [c["msg"][2] for c in tx]
        if stop_on_invalid:
            assert names == ["StartTransaction", "MeterValues", "StopTransaction"]
            stop = payload(tx[-1])
            assert (stop["transactionId"], stop["reason"]) == (FIRST_TX_ID, "DeAuthorized")
            assert "idTag" not in stop
        else:
            assert names == ["StartTransaction", "MeterValues"]
            assert rig.hw.relay_on is False and rig.agent.cp.connectors[1].tx is not None
        assert_one_in_flight(tx, csms)
        await rig.stop()
        await csms.stop()

    run(main())


def test_TC_038_CS_offline_stop_transaction(tmp_path):
    """Offline Stop Transaction: stopped by the driver while offline; on
    reconnect the StopTransaction carries the transactionId, reason Local,
    the meter reading and the time of the stop; then Finishing."""

    async def main():
        csms, rig = await booted(tmp_path, {"MeterValueSampleInterval": 0})
        await charging(csms, rig)
        t_start = rig.mono.t
        start = payload(csms.calls("StartTransaction")[0])
        await go_offline(csms, rig)
        rig.advance(7000, step_ms=1000)
        rig.present()
        stopped = rig.events("transaction_stopped")[-1]
        t_stop = rig.mono.t
        rig.advance(60000, step_ms=5000)
        await reconnect(csms, rig)
        await csms.wait_calls("StopTransaction", 1)
        await csms.wait(lambda: (1, "Finishing", "NoError") in csms.statuses)
        await rig.settle()
        stop = payload(csms.calls("StopTransaction")[0])
        assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (FIRST_TX_ID, "Local", TAG)
        assert stop["meterStop"] == stopped["meterStop"] > start["meterStart"]
        assert epoch_ms(stop["timestamp"]) - epoch_ms(start["timestamp"]) == t_stop - t_start
        assert rig.agent.store.state.open == {}
        await rig.stop()
        await csms.stop()

    run(main())


def test_TC_039_CS_offline_transaction(tmp_path):
    """Offline Transaction: started, sampled and stopped offline. On
    reconnect they go in the order they happened, one in flight; the
    samples and the Stop were queued before the Start was answered and get
    the transactionId the Central System gives it, at send time."""

    async def main():
        csms, rig = await booted(tmp_path, SAMPLE)
        rig.present()  # cache the idTag online
        await csms.wait_calls("Authorize", 1)
        await rig.settle()
        rig.advance(61000, step_ms=1000)
        await go_offline(csms, rig)
        rig.plug_and_charge()
        rig.advance(31000, step_ms=1000)
        rig.present()
        rig.unplug()
        queued = [rig.agent.store.state.msgs[s][0] for s in rig.agent.store.state.order]
        assert queued == ["StartTransaction", "MeterValues", "MeterValues", "MeterValues", "StopTransaction"]
        gate = csms.hold["StartTransaction"] = asyncio.Event()
        csms.next_tx_id = 4242
        await reconnect(csms, rig)
        await csms.wait_calls("StartTransaction", 1)
        frames = len(rig.frames())
        rig.advance(5000, step_ms=500)  # timers run while the Start is unanswered ...
        assert [f["action"] for f in rig.frames()[frames:] if f["action"] in TX_ACTIONS] == []  # ... nothing else goes
        gate.set()
        await csms.wait_calls("StopTransaction", 1)
        await rig.settle()
        tx = csms.tx_calls()
        assert [c["msg"][2] for c in tx] == queued
        assert [payload(c)["transactionId"] for c in tx[1:]] == [4242] * 4
        stamps = [epoch_ms(payload(tx[0])["timestamp"])]
        stamps += [epoch_ms(payload(c)["meterValue"][0]["timestamp"]) for c in tx[1:4]]
        stamps += [epoch_ms(payload(tx[4])["timestamp"])]
        assert stamps == sorted(stamps) and len(set(stamps)) == 5  # chronological
        stop = payload(tx[4])
        assert stop["meterStop"] > payload(tx[0])["meterStart"] and stop["reason"] == "Local"
        assert_one_in_flight(tx, csms)
        assert len(set(c["msg"][1] for c in tx)) == 5
        await rig.stop()
        await csms.stop()

    run(main())


def test_offline_session_then_power_cut(tmp_path):
    """TC_032_2_CS (power failure, stop transactions after reboot) while
    offline: a session started offline, then the charger loses power (the agent
    ends, a new one boots on the same journal). After BootNotification the
    Start, the samples taken before the cut and a StopTransaction with reason
    PowerLoss and the last journalled reading go out in order (C16 §4.2,
    §7.36), the Stop with the transactionId the Start gets."""

    async def main():
        csms, rig = await booted(tmp_path, dict(SAMPLE, AllowOfflineTxForUnknownId=True))
        await go_offline(csms, rig)
        rig.plug_and_charge()
        rig.advance(25000, step_ms=1000)
        last = rig.agent.store.state.open
        (local, entry), = last.items()
        checkpoint_wh = entry[4]
        await rig.stop()  # power cut: nothing more is written
        await rig.start()
        await reconnect(csms, rig)
        await csms.wait_calls("StopTransaction", 1)
        await rig.settle()
        names = [c["msg"][2] for c in csms.calls() if c["msg"][2] != "StatusNotification"]
        assert names[1:] == ["BootNotification", "StartTransaction", "MeterValues", "MeterValues", "StopTransaction"]
        stop = payload(csms.calls("StopTransaction")[0])
        mvs = [payload(c) for c in csms.calls("MeterValues")]
        assert (stop["transactionId"], stop["reason"], stop["meterStop"]) == (FIRST_TX_ID, "PowerLoss", checkpoint_wh)
        assert stop["timestamp"] == mvs[-1]["meterValue"][0]["timestamp"]  # the checkpoint's time
        assert energy(mvs[-1]) == checkpoint_wh
        assert rig.agent.store.state.open == {} and rig.agent.store.state.order == []
        await rig.stop()
        await csms.stop()

    run(main())
