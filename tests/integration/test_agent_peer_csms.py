"""The agent (emulator: the real agent on the host board, its meter read
over Modbus RTU frames) against a Central System written directly with the
`ocpp` package (ocpp.v16.ChargePoint behind a websockets server).

Every assertion is on what crossed the wire (the frames the CSMS recorded),
on the agent's events, or on the bench console's status; the simulated EV
and cards are driven through the bench console (pyserial socket://) where a
person at a bench would use it. C16 = OCPP 1.6 edition 2, C16E = its errata,
J16 = OCPP-J 1.6.
"""
import json
import time

from ocpp.v16 import call

from firmware.ocpp.v16.config import KEYS
from tests.integration.agent_kit import booted, charger, eventually, host_board, parse_iso, peer_bench, peer_csms, run

TAG = "TAG1"


def answer_status(msg):
    assert msg[0] == 3, msg
    return msg[2]["status"]


def between(csms, start, end):
    """The CALLs the charger sent between two frame indexes."""
    return [f for f in csms.calls(since=start) if csms.index(f) < end]


# ---- BootNotification, Heartbeat, the clock -------------------------------------------------


def test_boot_accepted_reports_every_connector_and_heartbeats_at_the_interval(tmp_path):
    """Accepted: interval = heartbeat period, connector 0 and 1 reported
    (C16E §3.22); a Heartbeat answered with a CALLERROR changes nothing; the
    Heartbeat answer sets the clock (C16 §4.6)."""

    async def main():
        async with peer_csms(boot_answers=[("Accepted", 1)]) as csms:
            csms.fail["Heartbeat"] = 1
            async with charger(csms.url, str(tmp_path)) as c:
                await booted(csms)
                first = csms.calls()[0]
                assert first.action == "BootNotification"
                assert first.payload == {"chargePointVendor": "OpenChargeAgent", "chargePointModel": "Emulator",
                                         "chargePointSerialNumber": "CP1", "firmwareVersion": "test"}
                await csms.wait_status(1, "Available")
                assert [f.payload["connectorId"] for f in csms.calls("StatusNotification")] == [0, 1]
                for f in csms.calls("StatusNotification"):
                    assert f.payload["errorCode"] == "NoError" and f.payload["timestamp"].endswith("Z")
                hb1 = await csms.wait_call("Heartbeat")
                answer = await csms.answer_to(hb1)
                assert answer.msg[0] == 4 and answer.msg[2] == "InternalError"
                csms.clock_offset_s = 2 * 86400.0  # the CSMS clock moves two days ahead
                hb2 = await csms.wait_call("Heartbeat", since=csms.mark())
                # HeartbeatInterval 1 s from the boot answer: nothing else was sent
                # in between, so each Heartbeat comes a second after the last frame.
                before = [f for f in csms.calls() if f.t < hb1.t][-1]
                assert hb1.t - before.t >= 0.9
                assert hb2.t - hb1.t >= 0.9
                assert hb1.payload == {} and hb2.payload == {}
                boot = await c.wait_event("boot")
                assert (boot["status"], boot["interval"]) == ("Accepted", 1)
                answer2 = await csms.answer_to(hb2)
                csms_now = parse_iso(answer2.msg[2]["currentTime"])
                async with c.console() as b:
                    # Set from the second Heartbeat's answer: two days ahead of this host.
                    await b.status_until(lambda st: 0 <= (parse_iso(st["clock"]) - csms_now).total_seconds() < 5)

    run(main())


def test_boot_pending_answers_the_csms_but_sends_nothing_unasked(tmp_path):
    """Pending (C16 §4.2.1): the charger answers CSMS requests, refuses
    RemoteStart, sends only what TriggerMessage asks for, and boots again
    once the interval has passed."""

    async def main():
        async with peer_csms(boot_answers=[("Pending", 1), ("Accepted", 300)], id_tags={TAG: "Accepted"}) as csms:
            async with charger(csms.url, str(tmp_path)) as c:
                boot1 = await csms.wait_call("BootNotification")
                await c.wait_event("boot", status="Pending")
                answered_at = await csms.answer_to(boot1)
                async with c.console() as b:
                    await b.cmd("plug")  # a status change: not reported while Pending
                    await c.wait_event("status", connector=1, status="Preparing")
                    msg = await csms.call(call.GetConfiguration(key=["HeartbeatInterval"]))
                    assert msg[2]["configurationKey"] == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
                    msg = await csms.call(call.RemoteStartTransaction(id_tag=TAG, connector_id=1))
                    assert answer_status(msg) == "Rejected"
                    mark = csms.mark()
                    msg = await csms.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=1))
                    assert answer_status(msg) == "Accepted"
                    triggered = await csms.wait_status(1, "Preparing", since=mark)
                    boot2 = await csms.wait_call("BootNotification", since=mark)
                    assert boot2.t - answered_at.t >= 0.9  # the interval was honoured
                    sent = [f.action for f in csms.calls() if f.t < boot2.t]
                    assert sent == ["BootNotification", "StatusNotification"], sent
                    assert triggered.t < boot2.t
                    await c.wait_event("boot", status="Accepted")
                    after = csms.index(boot2)
                    await csms.wait_status(0, "Available", since=after)
                    await csms.wait_status(1, "Preparing", since=after)
                    st = await b.status()
                    assert st["boot"] == "accepted" and st["connectors"][0]["status"] == "Preparing"

    run(main())


def test_boot_rejected_sends_and_answers_nothing_until_the_interval(tmp_path):
    """Rejected (C16 §4.2.1): nothing is sent and nothing answered before the
    interval has passed; then BootNotification again."""

    async def main():
        async with peer_csms(boot_answers=[("Rejected", 1), ("Accepted", 300)]) as csms:
            async with charger(csms.url, str(tmp_path)) as c:
                boot1 = await csms.wait_call("BootNotification")
                await c.wait_event("boot", status="Rejected")
                answered_at = await csms.answer_to(boot1)
                cs = csms.connections["CP1"]
                await cs._connection.send(json.dumps([2, "rejected-1", "ClearCache", {}]))
                async with c.console() as b:
                    await b.cmd("plug")
                boot2 = await csms.wait_call("BootNotification", since=csms.index(answered_at))
                assert boot2.t - answered_at.t >= 0.9
                await booted(csms, since=csms.index(boot2))
                await csms.wait_status(1, "Preparing")
                ins = [f for f in csms.frames.items if f.dir == "in" and f.t < boot2.t]
                assert [f.action for f in ins] == ["BootNotification"], ins
                assert not [f for f in csms.frames.items if f.dir == "in" and f.msg[1] == "rejected-1"]

    run(main())


def test_clock_unknown_at_power_up_is_set_by_the_boot_answer(tmp_path, monkeypatch):
    """A charger without a clock (RTC at 1970) takes the CSMS's time from the
    BootNotification answer; a transaction started before that is sent with
    its real time, never a 1970 timestamp (C16 §4.2: sync to currentTime)."""
    import asyncio

    from firmware import compat

    monkeypatch.setattr(compat, "wall_time", lambda: 0.0)

    async def main():
        async with peer_csms(id_tags={TAG: "Accepted"}) as csms:
            csms.clock_offset_s = 400 * 86400.0  # a CSMS clock nobody could confuse with ours
            csms.boot_gate = asyncio.Event()  # hold the BootNotification answer back
            async with charger(csms.url, str(tmp_path), ocpp={"AllowOfflineTxForUnknownId": True}) as c:
                await csms.wait_call("BootNotification")
                held_from = time.monotonic()
                async with c.console() as b:
                    st = await b.status()
                    assert st["clock"] is None and st["boot"] == "none"
                    await b.cmd("plug")
                    await b.cmd("card " + TAG)
                    started = await c.wait_event("transaction_started")
                    assert started["idTag"] == TAG
                    held_s = time.monotonic() - held_from
                    csms.boot_gate.set()
                    await c.wait_event("clock_set")
                    start = await csms.wait_call("StartTransaction")
                    boot_answer = await csms.answer_to(csms.calls("BootNotification")[0])
                    csms_now = parse_iso(boot_answer.msg[2]["currentTime"])
                    taken = parse_iso(start.payload["timestamp"])
                    # Taken before the clock was known, and stamped with the
                    # CSMS's clock once it was: a little before the boot answer.
                    # The clock is set to the middle of the BootNotification's
                    # round trip (the CSMS read its clock somewhere in it), so
                    # it may run ahead of currentTime by half the time the
                    # answer was held back, never more.
                    ahead = (taken - csms_now).total_seconds()
                    assert -5 < ahead <= held_s / 2 + 0.05, (start.payload, csms_now, held_s)
                    st = await b.status()
                    assert abs((parse_iso(st["clock"]) - csms_now).total_seconds()) < 5
                for f in csms.calls():
                    assert "1970" not in json.dumps(f.payload), f

    run(main())


# ---- StatusNotification ----------------------------------------------------------------------


def test_status_of_connector_zero_and_each_connector_and_a_refused_status_is_resent(tmp_path):
    """Two connectors: 0, 1 and 2 reported after boot; each connector's own
    changes; ChangeAvailability of the whole charger and of one connector, an
    unknown connector Rejected; a StatusNotification answered with a
    CALLERROR is reported again on the next connection (C16E §3.19), without
    a new BootNotification (J16 §5.4)."""
    from tests.integration.agent_kit import two_connector_board

    async def main():
        async with peer_bench(str(tmp_path), make_hw=two_connector_board()) as (csms, c):
            await csms.wait_status(2, "Available")
            assert [f.payload["connectorId"] for f in csms.calls("StatusNotification")] == [0, 1, 2]
            sims = c.hw.sims
            mark = csms.mark()
            sims[2].plug()
            await csms.wait_status(2, "Preparing", since=mark)
            assert [f.payload["connectorId"] for f in csms.calls("StatusNotification", mark)] == [2]
            sims[2].unplug()
            await csms.wait_status(2, "Available", since=mark)
            mark = csms.mark()
            assert answer_status(await csms.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))) == "Accepted"
            for cid in (0, 1, 2):
                await csms.wait_status(cid, "Unavailable", since=mark)
            assert answer_status(await csms.call(call.ChangeAvailability(connector_id=0, type="Operative"))) == "Accepted"
            for cid in (0, 1, 2):
                await csms.wait_status(cid, "Available", since=mark)
            assert answer_status(await csms.call(call.ChangeAvailability(connector_id=3, type="Inoperative"))) == "Rejected"
            mark = csms.mark()
            assert answer_status(await csms.call(call.ChangeAvailability(connector_id=2, type="Inoperative"))) == "Accepted"
            await csms.wait_status(2, "Unavailable", since=mark)
            assert [f.payload["connectorId"] for f in csms.calls("StatusNotification", mark)] == [2]
            # A refused StatusNotification is not lost.
            csms.fail["StatusNotification"] = 1
            mark = csms.mark()
            sims[1].plug()
            refused = await csms.wait_status(1, "Preparing", since=mark)
            assert (await csms.answer_to(refused)).kind == 4
            await csms.drop(refuse=False)
            again = await csms.wait_status(1, "Preparing", since=csms.index(refused) + 1)
            assert again.msg[1] != refused.msg[1]
            assert not csms.calls("BootNotification", mark)
            await c.wait_event("connected", since=1)

    run(main())


# ---- Authorize ---------------------------------------------------------------------------------


def test_authorize_accepted_invalid_and_unanswered(tmp_path):
    """A card the CSMS refuses starts nothing; an Authorize answered with a
    CALLERROR is decided as offline (unknown id: refused); an accepted card
    locks the cable, closes the contactor and starts the transaction."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted", "BLOCKED1": "Blocked"}) as (csms, c):
            async with c.console() as b:
                await b.cmd("plug")
                await csms.wait_status(1, "Preparing")
                mark = c.mark()
                await b.cmd("card BLOCKED1")
                rejected = await c.wait_event("card_rejected", since=mark)
                assert rejected == {"event": "card_rejected", "idTag": "BLOCKED1", "status": "Blocked"}
                mark = c.mark()
                await b.cmd("card NOBODY")
                assert (await c.wait_event("card_rejected", since=mark))["status"] == "Invalid"
                csms.fail["Authorize"] = 1
                mark = c.mark()
                await b.cmd("card " + TAG)
                assert (await c.wait_event("card_rejected", since=mark))["status"] == "Invalid"
                assert [f.payload["idTag"] for f in csms.calls("Authorize")] == ["BLOCKED1", "NOBODY", TAG]
                assert not csms.calls("StartTransaction")
                st = await b.status()
                assert st["connectors"][0]["status"] == "Preparing" and st["hw"]["lock_position"] == 0
                # The card read by the simulated RFID reader (PN532 frames).
                csms.id_tags["04A2B3C4D5"] = "Accepted"
                assert (await b.cmd("card 04A2B3C4D5"))["via"] == "reader"
                start = await csms.wait_call("StartTransaction")
                assert start.payload["idTag"] == "04A2B3C4D5" and start.payload["connectorId"] == 1
                assert csms.calls("Authorize")[-1].payload == {"idTag": "04A2B3C4D5"}
                st = await b.status_until(lambda st: st["connectors"][0].get("transaction", {}).get("transactionId") == 101)
                assert st["connectors"][0]["relay"] and st["hw"]["contacts_closed"] and st["hw"]["lock_position"] == 1

    run(main())


def test_authorization_cache_local_pre_authorize_and_clear_cache(tmp_path):
    """LocalPreAuthorize: a card in the authorization cache starts at once,
    without Authorize (C16 §3.5.1); ClearCache empties it."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            await csms.configure(("LocalPreAuthorize", "true"))
            async with c.console() as b:
                for n in (1, 2, 3):
                    await b.cmd("plug")
                    await b.cmd("card " + TAG)
                    await csms.wait_call("StartTransaction", since=0 if n == 1 else csms.index(stop) + 1)
                    await b.cmd("card " + TAG)
                    stop = await csms.wait_call("StopTransaction", since=csms.index(csms.calls("StartTransaction")[-1]))
                    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == TAG
                    await b.cmd("unplug")
                    await csms.wait_status(1, "Available", since=csms.index(stop))
                    if n == 2:
                        msg = await csms.call(call.ClearCache())
                        assert answer_status(msg) == "Accepted"
                # Session 1 asked, session 2 came from the cache, session 3 asked again.
                assert len(csms.calls("Authorize")) == 2
                starts = csms.calls("StartTransaction")
                auths = csms.calls("Authorize")
                assert auths[0].t < starts[0].t and starts[1].t < auths[1].t < starts[2].t

    run(main())


def test_local_authorize_offline(tmp_path):
    """Offline, a cached card starts a transaction while LocalAuthorizeOffline
    is true and not when it is false (C16 §9.1); the offline transaction
    reaches the CSMS in order once connected again, without a new
    BootNotification (J16 §5.4)."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("card " + TAG)
                await csms.wait_call("StartTransaction")
                await b.cmd("card " + TAG)
                await csms.wait_call("StopTransaction")
                await b.cmd("unplug")
                await csms.wait_status(1, "Available", since=csms.index(csms.calls("StopTransaction")[0]))
                await csms.drop()
                await c.wait_event("disconnected")
                mark = csms.mark()
                await b.cmd("plug")
                await b.cmd("card " + TAG)
                await c.wait_event("transaction_started", localId=2)
                await b.cmd("card " + TAG)
                await c.wait_event("transaction_stopped", localId=2)
                await b.cmd("unplug")
                # The bench console sets keys as the CSMS would.
                assert (await b.cmd("set LocalAuthorizeOffline false"))["status"] == "Accepted"
                await b.cmd("plug")
                ev = c.mark()
                await b.cmd("card " + TAG)
                refused = await c.wait_event("card_rejected", since=ev)
                assert refused["idTag"] == TAG
                st = await b.status()
                assert not st["online"] and "transaction" not in st["connectors"][0] and st["queued"] == 2
                csms.refuse = False
                stop = await csms.wait_call("StopTransaction", since=mark)
                start = csms.calls("StartTransaction", mark)[0]
                assert start.t < stop.t and stop.payload["transactionId"] == 102
                assert parse_iso(start.payload["timestamp"]) <= parse_iso(stop.payload["timestamp"])
                assert not csms.calls("BootNotification", mark)
                assert not csms.calls("Authorize", mark)
                await b.status_until(lambda st: st["queued"] == 0)

    run(main())


# ---- Transactions: reasons, remote start and stop ----------------------------------------------


def test_remote_start_and_stop_with_and_without_authorize_remote_tx_requests(tmp_path):
    """RemoteStartTransaction (C16 §5.11): Accepted, authorized first while
    AuthorizeRemoteTxRequests is true; Rejected for a busy or unknown
    connector. RemoteStopTransaction (C16 §5.12): reason Remote; Rejected for
    an unknown transaction. With AuthorizeRemoteTxRequests false no
    Authorize; an idTag the StartTransaction answer refuses is stopped with
    DeAuthorized (StopTransactionOnInvalidId, C16 §4.8)."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            async with c.console() as b:
                await b.cmd("plug")
                msg = await csms.call(call.RemoteStartTransaction(id_tag=TAG, connector_id=1))
                assert answer_status(msg) == "Accepted"
                start = await csms.wait_call("StartTransaction")
                auth = csms.calls("Authorize")
                assert [f.payload["idTag"] for f in auth] == [TAG] and auth[0].t < start.t
                tx = (await csms.answer_to(start)).msg[2]["transactionId"]
                assert answer_status(await csms.call(call.RemoteStartTransaction(id_tag=TAG, connector_id=1))) == "Rejected"
                assert answer_status(await csms.call(call.RemoteStartTransaction(id_tag=TAG, connector_id=7))) == "Rejected"
                assert answer_status(await csms.call(call.RemoteStopTransaction(transaction_id=tx + 50))) == "Rejected"
                assert answer_status(await csms.call(call.RemoteStopTransaction(transaction_id=tx))) == "Accepted"
                stop = await csms.wait_call("StopTransaction")
                assert stop.payload["transactionId"] == tx and stop.payload["reason"] == "Remote"
                st = await b.status_until(lambda st: not st["hw"]["contacts_closed"] and st["hw"]["lock_position"] == 0)
                assert not st["connectors"][0]["relay"]
                # An idTag the CSMS does not know, authorized first: refused, nothing starts.
                await b.cmd("unplug")
                await b.cmd("plug")
                mark = csms.mark()
                assert answer_status(await csms.call(call.RemoteStartTransaction(id_tag="STRANGER"))) == "Accepted"
                await csms.wait_call("Authorize", lambda p: p["idTag"] == "STRANGER", since=mark)
                await c.wait_event("card_rejected", idTag="STRANGER")
                assert not csms.calls("StartTransaction", mark)
                # Not authorized first: it starts, and the answer to StartTransaction ends it.
                await csms.configure(("AuthorizeRemoteTxRequests", "false"))
                mark = csms.mark()
                assert answer_status(await csms.call(call.RemoteStartTransaction(id_tag="STRANGER"))) == "Accepted"
                start = await csms.wait_call("StartTransaction", since=mark)
                assert start.payload["idTag"] == "STRANGER"
                stop = await csms.wait_call("StopTransaction", since=mark)
                assert stop.payload["reason"] == "DeAuthorized"
                assert not csms.calls("Authorize", mark)
                # StopTransactionOnInvalidId: the cable stays locked until the owner comes back.
                st = await b.status_until(lambda st: not st["hw"]["contacts_closed"])
                assert st["hw"]["lock_position"] == 1
                await b.cmd("card STRANGER")
                await b.status_until(lambda st: st["hw"]["lock_position"] == 0)

    run(main())


def test_stop_transaction_on_invalid_id_false_suspends_the_session(tmp_path):
    """StopTransactionOnInvalidId false (C16 §4.8): a session whose idTag the
    StartTransaction answer refuses goes on without energy (SuspendedEVSE,
    contactor open) until it is stopped."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}, ocpp={"StopTransactionOnInvalidId": False}) as (csms, c):
            csms.start_status = "Invalid"
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("charge")
                await b.cmd("card " + TAG)
                await csms.wait_call("StartTransaction")
                await csms.wait_status(1, "SuspendedEVSE")
                st = await b.status_until(lambda st: not st["hw"]["contacts_closed"])
                conn = st["connectors"][0]
                assert conn["status"] == "SuspendedEVSE" and not conn["relay"] and conn["transaction"]["transactionId"] == 101
                assert st["hw"]["lock_position"] == 1
                assert not csms.calls("StopTransaction")
                await b.cmd("card " + TAG)
                stop = await csms.wait_call("StopTransaction")
                assert stop.payload["reason"] == "Local"
                await b.status_until(lambda st: st["hw"]["lock_position"] == 0)

    run(main())


def test_ev_side_disconnect_keys(tmp_path):
    """StopTransactionOnEVSideDisconnect and UnlockConnectorOnEVSideDisconnect
    (C16 §4.10): true/true stops with EVDisconnected and unlocks; false keeps
    the session (SuspendedEV) with the cable locked whatever the unlock key
    says; stop true, unlock false stops and keeps the cable locked."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            async with c.console() as b:

                async def session():
                    await b.cmd("plug")
                    await b.cmd("charge")
                    await b.cmd("card " + TAG)
                    await b.status_until(lambda st: st["connectors"][0]["status"] == "Charging")

                await session()
                await b.cmd("unplug")
                stop = await csms.wait_call("StopTransaction")
                assert stop.payload["reason"] == "EVDisconnected" and "idTag" not in stop.payload
                await b.status_until(lambda st: st["hw"]["lock_position"] == 0 and st["connectors"][0]["status"] == "Available")

                await csms.configure(("StopTransactionOnEVSideDisconnect", "false"))
                mark = csms.mark()
                await session()
                await b.cmd("unplug")
                await csms.wait_status(1, "SuspendedEV", since=mark)
                st = await b.status()
                assert st["connectors"][0]["transaction"] and st["hw"]["lock_position"] == 1
                await b.cmd("plug")
                await b.cmd("charge")
                await csms.wait_status(1, "Charging", since=csms.index(csms.calls("StatusNotification")[-1]))
                assert not csms.calls("StopTransaction", mark)
                await b.cmd("card " + TAG)
                await csms.wait_call("StopTransaction", since=mark)
                await b.cmd("unplug")

                await csms.configure(("StopTransactionOnEVSideDisconnect", "true"), ("UnlockConnectorOnEVSideDisconnect", "false"))
                mark = csms.mark()
                await session()
                await b.cmd("unplug")
                stop = await csms.wait_call("StopTransaction", since=mark)
                assert stop.payload["reason"] == "EVDisconnected"
                st = await b.status_until(lambda st: st["connectors"][0]["status"] == "Available")
                assert st["hw"]["lock_position"] == 1

    run(main())


def test_connection_timeout_ends_an_authorization_without_a_cable(tmp_path):
    """ConnectionTimeOut (C16 §9.1.7): a card presented with no EV plugged
    in holds the connector Preparing for that long, then it is Available
    again and a later plug starts nothing."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            await csms.configure(("ConnectionTimeOut", "1"))
            async with c.console() as b:
                await b.cmd("card " + TAG)
                prep = await csms.wait_status(1, "Preparing")
                back = await csms.wait_status(1, "Available", since=csms.index(prep))
                assert back.t - prep.t >= 0.9
                await c.wait_event("connection_timeout")
                mark = csms.mark()
                await b.cmd("plug")
                await csms.wait_status(1, "Preparing", since=mark)
                st = await b.status()
                assert "transaction" not in st["connectors"][0] and not csms.calls("StartTransaction")

    run(main())


# ---- MeterValues ---------------------------------------------------------------------------------


def _values(payload):
    return payload["meterValue"][0]["sampledValue"]


def test_meter_values_sampled_clock_aligned_and_stop_txn_data(tmp_path):
    """MeterValueSampleInterval / MeterValuesSampledData and
    ClockAlignedDataInterval / MeterValuesAlignedData set by
    ChangeConfiguration (C16 §4.7, §9.1); StopTxnSampledData and
    StopTxnAlignedData in StopTransaction.transactionData; a MeterValues
    answered with a CALLERROR is sent again with a new messageId (C16 §3.7)."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            await csms.configure(
                ("MeterValueSampleInterval", "1"),
                ("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import,Current.Import"),
                ("ClockAlignedDataInterval", "1"),
                ("MeterValuesAlignedData", "Energy.Active.Import.Register,Voltage"),
                ("StopTxnSampledData", "Energy.Active.Import.Register"),
                ("StopTxnAlignedData", "Energy.Active.Import.Register"),
                ("TransactionMessageRetryInterval", "1"),
            )
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("charge")
                await b.cmd("card " + TAG)
                start = await csms.wait_call("StartTransaction")
                csms.fail["MeterValues"] = 1
                tx = (await csms.answer_to(start)).msg[2]["transactionId"]

                def in_tx(context):
                    return lambda p: p.get("transactionId") == tx and _values(p)[0]["context"] == context

                first = await csms.wait_call("MeterValues", in_tx("Sample.Periodic"), csms.index(start))
                await csms.wait_call("MeterValues", in_tx("Sample.Clock"), csms.index(start))

                def periodic():
                    return [f for f in csms.calls("MeterValues", csms.index(start)) if in_tx("Sample.Periodic")(f.payload)]

                await csms.frames.until(lambda: len({f.payload["meterValue"][0]["timestamp"] for f in periodic()}) >= 3,
                                        what="three sampled MeterValues")
                await b.cmd("card " + TAG)
                stop = await csms.wait_call("StopTransaction")
            mvs = [f for f in csms.calls("MeterValues", csms.index(start)) if f.t < stop.t]
            refused = [f for f in mvs if (await csms.answer_to(f)).kind == 4]
            assert len(refused) == 1 and refused[0].payload.get("transactionId") == tx
            again = [f for f in mvs if f.payload == refused[0].payload and f is not refused[0]]
            assert len(again) == 1 and again[0].msg[1] != refused[0].msg[1]
            sampled = [f.payload for f in mvs if in_tx("Sample.Periodic")(f.payload) and f is not refused[0]]
            aligned = [f.payload for f in mvs if in_tx("Sample.Clock")(f.payload) and f is not refused[0]]
            for p in sampled:
                got = sorted((v["measurand"], v.get("phase"), v["unit"]) for v in _values(p))
                assert got == [("Current.Import", "L1", "A"), ("Current.Import", "L2", "A"), ("Current.Import", "L3", "A"),
                               ("Energy.Active.Import.Register", None, "Wh"), ("Power.Active.Import", None, "W")], got
                assert p["connectorId"] == 1
            stamps = sorted(parse_iso(p["meterValue"][0]["timestamp"]) for p in sampled)
            gaps = [(b_ - a).total_seconds() for a, b_ in zip(stamps, stamps[1:])]
            assert all(0.9 <= g <= 1.5 for g in gaps), gaps
            energy = [float(v["value"]) for p in sampled for v in _values(p) if v["measurand"].startswith("Energy")]
            assert energy == sorted(energy) and energy[-1] > energy[0]
            for p in aligned:
                got = sorted((v["measurand"], v.get("phase")) for v in _values(p))
                assert got == [("Energy.Active.Import.Register", None), ("Voltage", "L1-N"), ("Voltage", "L2-N"), ("Voltage", "L3-N")], got
                # Clock-aligned: on a whole multiple of the interval from midnight UTC.
                assert p["meterValue"][0]["timestamp"].endswith(".000Z"), p
            data = stop.payload["transactionData"]
            contexts = [mv["sampledValue"][0]["context"] for mv in data]
            assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
            assert {"Sample.Periodic", "Sample.Clock"} <= set(contexts[1:-1]), contexts
            assert all(len(mv["sampledValue"]) == 1 and mv["sampledValue"][0]["measurand"] == "Energy.Active.Import.Register" for mv in data)
            assert stop.payload["meterStop"] >= start.payload["meterStart"] + energy[-1] - energy[0] - 1
            assert int(float(data[-1]["sampledValue"][0]["value"]) + 0.5) == stop.payload["meterStop"]
            assert stop.payload["reason"] == "Local" and stop.payload["transactionId"] == tx
            assert first

    run(main())


# ---- GetConfiguration / ChangeConfiguration, Reset ------------------------------------------------


def test_get_and_change_configuration_kept_across_a_soft_reset(tmp_path):
    """GetConfiguration (C16 §5.8): every key, the keys asked for, unknownKey,
    more keys than GetConfigurationMaxKeys. ChangeConfiguration (C16 §5.3,
    §7.22): Accepted, Rejected (read-only, bad value), NotSupported (unknown
    key), RebootRequired; a payload of the wrong type gets a CALLERROR. The
    changes survive a soft Reset, after which the charger boots again."""

    async def main():
        async with peer_bench(str(tmp_path)) as (csms, c):
            every = (await csms.result(call.GetConfiguration()))["configurationKey"]
            assert sorted(k["key"] for k in every) == sorted(KEYS)
            by_key = {k["key"]: k for k in every}
            for key, spec in KEYS.items():
                assert by_key[key]["readonly"] == (spec[1] == 0), key
            assert "value" not in by_key["AuthorizationKey"]  # write-only (J16 §6.2.2)
            assert by_key["NumberOfConnectors"]["value"] == "1"
            assert by_key["SupportedFeatureProfiles"]["value"] == "Core,RemoteTrigger"
            some = await csms.result(call.GetConfiguration(key=["ConnectionTimeOut", "NoSuchKey", "MeterModel"]))
            assert some["configurationKey"] == [{"key": "ConnectionTimeOut", "readonly": False, "value": "60"},
                                                {"key": "MeterModel", "readonly": False, "value": "SDM630"}]
            assert some["unknownKey"] == ["NoSuchKey"]
            msg = await csms.call(call.GetConfiguration(key=["K%d" % i for i in range(65)]))
            assert msg[0] == 4 and msg[2] == "OccurenceConstraintViolation", msg
            cases = (
                ("ConnectionTimeOut", "17", "Accepted"),
                ("NumberOfConnectors", "2", "Rejected"),
                ("HeartbeatInterval", "soon", "Rejected"),
                ("ConnectionTimeOut", "0", "Rejected"),
                ("MeterValuesSampledData", "Energy.Active.Import.Register,Colour", "Rejected"),
                ("WebSocketPingInterval", "-1", "Rejected"),
                ("NoSuchKey", "1", "NotSupported"),
                ("MeterModel", "SDM120", "RebootRequired"),
                ("LocalPreAuthorize", "TRUE", "Accepted"),
            )
            for key, value, want in cases:
                got = answer_status(await csms.call(call.ChangeConfiguration(key=key, value=value)))
                assert got == want, (key, value, got)
            msg = await csms.call(call.ChangeConfiguration(key="ConnectionTimeOut", value=30), validate=False)
            assert msg[0] == 4 and msg[2] == "TypeConstraintViolation", msg
            keys = ["ConnectionTimeOut", "MeterModel", "LocalPreAuthorize", "NumberOfConnectors"]
            values = {k["key"]: k["value"] for k in (await csms.result(call.GetConfiguration(key=keys)))["configurationKey"]}
            assert values == {"ConnectionTimeOut": "17", "MeterModel": "SDM120", "LocalPreAuthorize": "true", "NumberOfConnectors": "1"}
            mark = csms.mark()
            assert answer_status(await csms.call(call.Reset(type="Soft"))) == "Accepted"
            await c.wait_event("reboot", type="soft")
            await booted(csms, since=mark)
            assert len(c.agents) == 2
            values = {k["key"]: k["value"] for k in (await csms.result(call.GetConfiguration(key=keys)))["configurationKey"]}
            assert values == {"ConnectionTimeOut": "17", "MeterModel": "SDM120", "LocalPreAuthorize": "true", "NumberOfConnectors": "1"}

    run(main())


# ---- TriggerMessage, DataTransfer, UnlockConnector, ClearCache ------------------------------------


def test_trigger_message_each_message_and_the_refusals(tmp_path):
    """TriggerMessage (C16 §5.17): Accepted and then the message, for
    BootNotification, Heartbeat, MeterValues and StatusNotification (one
    connector or all); NotImplemented for the FirmwareManagement messages;
    Rejected for an unknown connector; a requestedMessage outside the enum
    gets a CALLERROR."""

    async def main():
        async with peer_bench(str(tmp_path)) as (csms, c):
            await csms.wait_status(1, "Available")
            # MeterValues can only be triggered once the meter has been read.
            await eventually(lambda: c.agent.cp.meter_values_now(1, c.agent.mono.now()), what="a meter reading")
            for what, cid in (("BootNotification", None), ("Heartbeat", None), ("MeterValues", 1), ("StatusNotification", 1)):
                mark = csms.mark()
                msg = await csms.call(call.TriggerMessage(requested_message=what, connector_id=cid))
                assert answer_status(msg) == "Accepted", what
                # The answer first, then the message (C16 §5.17).
                answered = next(f for f in csms.frames.items[mark:] if f.dir == "in" and f.kind == 3 and f.msg[1] == msg[1])
                sent = await csms.wait_call(what, since=csms.index(answered))
                if what == "MeterValues":
                    assert sent.payload["connectorId"] == 1 and "transactionId" not in sent.payload
                    assert {v["context"] for v in _values(sent.payload)} == {"Trigger"}
                if what == "StatusNotification":
                    assert sent.payload["connectorId"] == 1 and sent.payload["status"] == "Available"
            mark = csms.mark()
            assert answer_status(await csms.call(call.TriggerMessage(requested_message="StatusNotification"))) == "Accepted"
            await csms.wait_status(0, "Available", since=mark)
            await csms.wait_status(1, "Available", since=mark)
            for what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
                assert answer_status(await csms.call(call.TriggerMessage(requested_message=what))) == "NotImplemented"
            msg = await csms.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=2))
            assert answer_status(msg) == "Rejected"
            msg = await csms.call(call.TriggerMessage(requested_message="Coffee"), validate=False)
            assert msg[0] == 4 and msg[2] == "PropertyConstraintViolation", msg
            assert await c.wait_event("boot", status="Accepted")

    run(main())


def test_data_transfer_unlock_connector_and_clear_cache(tmp_path):
    """DataTransfer (C16 §5.5): UnknownVendorId, UnknownMessageId, and a
    vendor handler's answer. UnlockConnector (C16 §5.17): Unlocked; a running
    transaction is stopped first (UnlockCommand); UnlockFailed when the lock
    does not move; NotSupported for a connector that does not exist.
    ClearCache: Accepted."""

    async def main():
        async with peer_csms(id_tags={TAG: "Accepted"}) as csms:
            # A lock that gives up sooner than the board default (1 s, one retry).
            async with charger(csms.url, str(tmp_path), make_hw=host_board(lock_pulse_ms=200, lock_verify_ms=400)) as c:
                await booted(csms)
                msg = await csms.result(call.DataTransfer(vendor_id="com.example.nobody", message_id="x"))
                assert msg == {"status": "UnknownVendorId"}
                c.agent.cp.vendors["org.example.bench"] = {"echo": lambda data: ("Accepted", "echo:" + (data or ""))}
                msg = await csms.result(call.DataTransfer(vendor_id="org.example.bench", message_id="nope"))
                assert msg == {"status": "UnknownMessageId"}
                msg = await csms.result(call.DataTransfer(vendor_id="org.example.bench", message_id="echo", data="hi"))
                assert msg == {"status": "Accepted", "data": "echo:hi"}
                assert await csms.result(call.ClearCache()) == {"status": "Accepted"}

                assert await csms.result(call.UnlockConnector(connector_id=1)) == {"status": "Unlocked"}
                assert await csms.result(call.UnlockConnector(connector_id=2)) == {"status": "NotSupported"}
                async with c.console() as b:
                    await b.cmd("plug")
                    await b.cmd("card " + TAG)
                    await b.status_until(lambda st: st["connectors"][0].get("transaction") and st["hw"]["contacts_closed"])
                    assert await csms.result(call.UnlockConnector(connector_id=1)) == {"status": "Unlocked"}
                    stop = await csms.wait_call("StopTransaction")
                    assert stop.payload["reason"] == "UnlockCommand"
                    st = await b.status()
                    assert st["hw"]["lock_position"] == 0 and not st["hw"]["contacts_closed"]
                    await b.cmd("unplug")
                    await b.cmd("plug")
                    await b.cmd("card " + TAG)
                    await b.status_until(lambda st: st["connectors"][0].get("transaction") and st["hw"]["contacts_closed"])
                    await b.cmd("fault lock")  # the lock motor jams
                    assert await csms.result(call.UnlockConnector(connector_id=1)) == {"status": "UnlockFailed"}
                    assert csms.calls("StopTransaction")[-1].payload["reason"] == "UnlockCommand"
                    st = await b.status()
                    assert st["hw"]["lock_position"] == 1 and st["hw"]["injected"] == ["lock_failure"]
                    await b.cmd("clear lock")
                    assert await csms.result(call.UnlockConnector(connector_id=1)) == {"status": "Unlocked"}

    run(main())


def test_a_hardware_fault_while_charging_ends_the_transaction(tmp_path):
    """The control pilot shorted to PE while charging (IEC 61851-1 state E):
    the connector is Faulted with OtherError (C16 §7.6), the contactor opens
    and the transaction ends with reason Other (C16 §7.36); once the short is
    gone the connector leaves Faulted."""

    async def main():
        async with peer_bench(str(tmp_path), id_tags={TAG: "Accepted"}) as (csms, c):
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("charge")
                await b.cmd("card " + TAG)
                await csms.wait_status(1, "Charging")
                await b.cmd("fault pilot")
                faulted = await csms.wait_status(1, "Faulted")
                assert faulted.payload["errorCode"] == "OtherError", faulted.payload
                stop = await csms.wait_call("StopTransaction")
                assert stop.payload["reason"] == "Other" and "idTag" not in stop.payload
                st = await b.status_until(lambda st: not st["hw"]["contacts_closed"])
                assert st["connectors"][0]["status"] == "Faulted" and "transaction" not in st["connectors"][0]
                await b.cmd("clear pilot")
                back = await csms.wait_call("StatusNotification", lambda p: p["status"] != "Faulted", since=csms.index(faulted))
                assert back.payload["errorCode"] == "NoError", back.payload

    run(main())
