"""The agent (emulator: the real agent on the host board, its meter read
over Modbus RTU frames) against the bench CSMS (host_tools/csms, in this
process), driven through the CSMS's HTTP API and the charger's bench
console. Assertions are on the CSMS's records (sessions, meter values,
connector statuses, the ledger of transaction messages, the message log)
and on the console's status. C16 = OCPP 1.6 edition 2, C16E = its errata.
"""
import contextlib

from tests.integration.agent_kit import charger, eventually, run
from tests.integration.csms_peers import api, csms_http

CARD = "04A2B3C4D5"  # a UID: read through the simulated PN532 reader
TAG = "TAG1"


def statuses(server, cp="CP1"):
    return {c["connector_id"]: c["status"] for c in server.storage.list_connectors(cp)}


def frames(server, action, direction="in", cp="CP1"):
    """Message-log records of CALLs of one action (in: from the charger)."""
    return [r for r in server.message_log.query(charger=cp, action=action) if r["type"] == "CALL" and r["dir"] == direction]


def ledger(server, action=None, cp="CP1"):
    return [r for r in server.storage.ledger(cp) if action is None or r["action"] == action]


async def accepted(server, since_boots=0, cp="CP1"):
    """The charger has booted (Accepted) and reported connector 0 and 1."""

    def done():
        row = server.storage.get_charger(cp)
        return row is not None and row["boot_count"] > since_boots and row["boot_status"] == "Accepted" \
            and server.sessions.get(cp) is not None and set(statuses(server, cp)) >= {0, 1}

    await eventually(done, what="%s accepted" % cp)


@contextlib.asynccontextmanager
async def bench_charger(state_dir, ocpp=None, **options):
    """A bench CSMS (options: start_csms's), its API client and one charger
    (CP1) on it, accepted: yields (server, http, charger)."""
    async with csms_http(**options) as (server, http):
        async with charger(server.ws_url, state_dir, ocpp=ocpp) as c:
            await accepted(server)
            yield server, http, c


async def call(http, action, payload=None, cp="CP1"):
    _, _, body = await api(http, "POST", "/api/chargers/%s/call" % cp, {"action": action, "payload": payload or {}}, expect=200)
    return body


# ---- a session from the bench console, seen through the API --------------------------------


def test_console_session_with_meter_values_in_the_api(tmp_path):
    """A person at the bench: plug, a card at the reader, the EV charges, stop
    from the console; the CSMS API shows the session, its meter values and
    the connector statuses, and the ledger holds each transaction message
    once. Nothing was sent before the boot was accepted (bootViolations)."""

    async def main():
        async with bench_charger(str(tmp_path), id_tags={CARD: "Accepted"}) as (server, http, c):
            body = {"settings": [{"key": "MeterValueSampleInterval", "value": "1"},
                                 {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,Power.Active.Import"}]}
            _, _, got = await api(http, "PUT", "/api/chargers/CP1/configuration", body, expect=200)
            assert [r["status"] for r in got["results"]] == ["Accepted", "Accepted"]
            async with c.console() as b:
                await b.cmd("plug")
                assert (await b.cmd("card " + CARD))["via"] == "reader"
                await b.cmd("charge")
                await b.wait_event("transaction_started", idTag=CARD)
                await eventually(lambda: server.storage.active_transactions("CP1"), what="an active session")
                sid = server.storage.active_transactions("CP1")[0]["id"]

                async def energy_values():
                    _, _, s = await api(http, "GET", "/api/sessions/%d" % sid, expect=200)
                    return [m for m in s["meterValues"] if m["measurand"] == "Energy.Active.Import.Register" and m["context"] == "Sample.Periodic"]

                async def two_values():
                    return len(await energy_values()) >= 2

                await eventually(two_values, what="two sampled energy values in the API")
                st = await b.status_until(lambda st: st["connectors"][0]["status"] == "Charging")
                conn = st["connectors"][0]
                assert conn["relay"] and conn["transaction"]["transactionId"] == sid
                assert st["hw"]["contacts_closed"] and st["hw"]["lock_position"] == 1 and st["hw"]["power_w"] > 1000
                _, _, ch = await api(http, "GET", "/api/chargers/CP1", expect=200)
                assert {c_["connectorId"]: c_["status"] for c_ in ch["connectors"]} == {0: "Available", 1: "Charging"}
                await b.cmd("stop")
                await b.wait_event("transaction_stopped", reason="Local")
                await eventually(lambda: server.storage.get_transaction(sid)["status"] == "stopped", what="the session stopped")
            _, _, s = await api(http, "GET", "/api/sessions/%d" % sid, expect=200)
            assert s["stopReason"] == "Local" and s["idTag"] == CARD and s["energyWh"] > 0
            energies = [float(m["value"]) for m in s["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
            assert energies == sorted(energies) and s["meterStart"] <= energies[0] and energies[-1] <= s["meterStop"]
            assert {m["unit"] for m in s["meterValues"]} == {"Wh", "W"}
            await eventually(lambda: statuses(server)[1] == "Finishing", what="Finishing stored")
            counts = server.storage.ledger_counts("CP1")
            assert counts["started"] == 1 and counts["stopped"] == 1 and counts["meter_values"] >= 2
            assert set(counts) == {"started", "stopped", "meter_values"}, counts
            assert server.storage.get_charger("CP1")["boot_violations"] == 0
            # Each Authorize and StatusNotification the log holds was answered.
            assert [r["payload"]["idTag"] for r in frames(server, "Authorize")] == [CARD]

    run(main())


# ---- RemoteStartTransaction / RemoteStopTransaction through the API ---------------------------


def test_remote_start_and_stop_through_the_sessions_api(tmp_path):
    """POST /api/sessions sends RemoteStartTransaction: 201 once the
    transaction is reported; 424 when the charger rejects (busy connector,
    unknown connector). Stopping sends RemoteStopTransaction: reason Remote;
    409 when already stopped; Rejected for a transaction the charger does not
    have. With AuthorizeRemoteTxRequests false no Authorize goes out and an
    idTag the CSMS refuses at StartTransaction ends with DeAuthorized."""

    async def main():
        async with bench_charger(str(tmp_path), id_tags={TAG: "Accepted"}) as (server, http, c):
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("charge")
                start = {"chargerId": "CP1", "idTag": TAG, "connectorId": 1, "wait": 5}
                status, headers, body = await api(http, "POST", "/api/sessions", start)
                assert status == 201, body
                sid = body["session"]["id"]
                assert headers["Location"] == "/api/sessions/%d" % sid and body["session"]["status"] == "active"
                assert [r["payload"]["idTag"] for r in frames(server, "Authorize")] == [TAG]  # AuthorizeRemoteTxRequests
                status, _, body = await api(http, "POST", "/api/sessions", start)
                assert status == 424 and body["error"]["type"] == "charging_provider_error"
                assert body["charger_answer"]["payload"] == {"status": "Rejected"}
                status, _, body = await api(http, "POST", "/api/sessions", dict(start, connectorId=3))
                assert status == 424 and body["charger_answer"]["payload"] == {"status": "Rejected"}
                answer = await call(http, "RemoteStopTransaction", {"transactionId": sid + 100})
                assert answer["payload"] == {"status": "Rejected"}
                status, _, body = await api(http, "POST", "/api/sessions/%d/stop" % sid, {"wait": 5})
                assert status == 200 and body["session"]["stopReason"] == "Remote", body
                status, _, body = await api(http, "POST", "/api/sessions/%d/stop" % sid, {"wait": 1})
                assert status == 409 and body["error"]["type"] == "already_stopped"
                await b.status_until(lambda st: st["hw"]["lock_position"] == 0 and not st["hw"]["contacts_closed"])
                await b.cmd("unplug")

                _, _, got = await api(http, "PUT", "/api/chargers/CP1/configuration", {"key": "AuthorizeRemoteTxRequests", "value": "false"}, expect=200)
                assert got["results"] == [{"key": "AuthorizeRemoteTxRequests", "status": "Accepted"}]
                # Started before the EV is there: it waits for the plug (ConnectionTimeOut).
                status, _, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": "STRANGER"})
                assert status == 202, body
                await b.cmd("plug")
                await eventually(lambda: [t for t in server.storage.list_transactions("CP1") if t["id_tag"] == "STRANGER" and t["status"] == "stopped"],
                                 what="the refused session stopped")
                tx = [t for t in server.storage.list_transactions("CP1") if t["id_tag"] == "STRANGER"][0]
                assert tx["id_tag_status"] == "Invalid" and tx["stop_reason"] == "DeAuthorized"
                assert len(frames(server, "Authorize")) == 1

    run(main())


# ---- ChangeAvailability --------------------------------------------------------------------------


def test_change_availability_scheduled_while_charging_and_kept_across_a_reboot(tmp_path):
    """ChangeAvailability (C16 §5.2): Accepted and Unavailable; Scheduled
    while a transaction runs, applied when it ends; Rejected (424) for an
    unknown connector; still Unavailable after a reboot (C16 §4.9)."""

    async def main():
        async with bench_charger(str(tmp_path), id_tags={TAG: "Accepted"}) as (server, http, c):
            _, _, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Inoperative", "connectorId": 1}, expect=200)
            assert body["status"] == "Accepted"
            await eventually(lambda: statuses(server)[1] == "Unavailable", what="Unavailable")
            _, _, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Operative", "connectorId": 1}, expect=200)
            await eventually(lambda: statuses(server)[1] == "Available", what="Available")
            status, _, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Inoperative", "connectorId": 5})
            assert status == 424 and body["charger_answer"]["payload"] == {"status": "Rejected"}
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("card " + TAG)
                await b.cmd("charge")
                await eventually(lambda: statuses(server)[1] == "Charging", what="Charging")
                _, _, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Inoperative", "connectorId": 1}, expect=200)
                assert body["status"] == "Scheduled"
                st = await b.status()
                assert st["connectors"][0]["status"] == "Charging" and st["hw"]["contacts_closed"]
                await b.cmd("stop")
                await eventually(lambda: statuses(server)[1] == "Unavailable", what="Unavailable after the stop")
                # A card on an unavailable connector starts nothing.
                await b.cmd("unplug")
                await b.cmd("plug")
                await b.cmd("card " + TAG)
                await b.wait_event("card_rejected")
                answer = await call(http, "Reset", {"type": "Soft"})
                assert answer["payload"] == {"status": "Accepted"}
                await accepted(server, since_boots=1)
                assert len(c.agents) == 2
                await eventually(lambda: statuses(server)[1] == "Unavailable", what="Unavailable after the reboot")
                st = await b.status()  # the console outlives the reboot
                assert st["connectors"][0]["status"] == "Unavailable"
                _, _, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Operative"}, expect=200)
                assert body["status"] == "Accepted"
                await eventually(lambda: statuses(server) == {0: "Available", 1: "Available"}, what="Available again")
            assert len([t for t in server.storage.list_transactions("CP1")]) == 1

    run(main())


# ---- Reset ------------------------------------------------------------------------------------------


def test_soft_and_hard_reset_stop_the_transaction_and_the_charger_comes_back(tmp_path):
    """Reset (C16 §5.14, C16E §3.36): Soft stops the transaction (SoftReset)
    and delivers the StopTransaction before rebooting; Hard reboots at once
    and delivers its StopTransaction (HardReset) after the new boot. The agent
    restarts in this process on the same journal and reconnects; every
    transaction reaches the CSMS once."""

    async def main():
        async with bench_charger(str(tmp_path), id_tags={TAG: "Accepted"}) as (server, http, c):
            async with c.console() as b:
                for n, kind in ((1, "Soft"), (2, "Hard")):
                    await b.cmd("plug")
                    await b.cmd("card " + TAG)
                    await eventually(lambda: len(server.storage.list_transactions("CP1")) == n, what="session %d" % n)
                    boots = server.storage.get_charger("CP1")["boot_count"]
                    answer = await call(http, "Reset", {"type": kind})
                    assert answer["payload"] == {"status": "Accepted"}
                    await accepted(server, since_boots=boots)
                    await eventually(lambda: server.storage.list_transactions("CP1")[-1]["status"] == "stopped", what="stopped")
                    assert len(c.agents) == n + 1
                    tx = server.storage.list_transactions("CP1")[-1]
                    assert tx["stop_reason"] == kind + "Reset"
                    log = server.message_log.query(charger="CP1")
                    stop_at = [i for i, r in enumerate(log) if r["type"] == "CALL" and r["action"] == "StopTransaction"][-1]
                    boot_at = [i for i, r in enumerate(log) if r["type"] == "CALL" and r["action"] == "BootNotification"][-1]
                    # Soft: delivered before the reboot; hard: after the new boot.
                    assert (stop_at < boot_at) if kind == "Soft" else (stop_at > boot_at), (kind, stop_at, boot_at)
                q = await b.cmd("queue")
                assert (q["queued"], q["open"], q["parked"]) == (0, 0, 0)
            counts = server.storage.ledger_counts("CP1")
            assert counts == {"started": 2, "stopped": 2}, counts
            assert server.storage.get_charger("CP1")["boot_violations"] == 0

    run(main())


# ---- Configuration, triggers and the other CSMS calls through the API ---------------------------


def test_configuration_and_other_calls_through_the_api(tmp_path):
    """GET/PUT /api/chargers/{id}/configuration (GetConfiguration,
    ChangeConfiguration with each answer) and raw calls: TriggerMessage,
    DataTransfer, UnlockConnector, ClearCache; an unknown action gets
    NotImplemented, a 1.6 action of a profile left out NotSupported, a
    payload of the wrong type TypeConstraintViolation (J16 §4.2.3)."""

    async def main():
        async with csms_http() as (server, http):
            async with charger(server.ws_url, str(tmp_path)):
                await accepted(server)
                _, _, body = await api(http, "GET", "/api/chargers/CP1/configuration", expect=200)
                keys = {e["key"]: e for e in body["configuration"]}
                assert keys["HeartbeatInterval"]["value"] == "60"  # the CSMS's interval, from the boot answer
                assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "value": "1", "readonly": True}
                _, _, body = await api(http, "GET", "/api/chargers/CP1/configuration?key=ClockAlignedDataInterval&key=Nope", expect=200)
                assert body["configuration"] == [{"key": "ClockAlignedDataInterval", "value": "900", "readonly": False}]
                assert body["unknownKeys"] == ["Nope"]
                settings = [{"key": "ClockAlignedDataInterval", "value": "60"}, {"key": "SupportedFeatureProfiles", "value": "Core"},
                            {"key": "ClockAlignedDataInterval", "value": "-5"}, {"key": "Nope", "value": "1"},
                            {"key": "MeterModel", "value": "SDM120"}]
                _, _, body = await api(http, "PUT", "/api/chargers/CP1/configuration", {"settings": settings}, expect=200)
                assert [r["status"] for r in body["results"]] == ["Accepted", "Rejected", "Rejected", "NotSupported", "RebootRequired"]

                mark = len(frames(server, "StatusNotification"))
                assert (await call(http, "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}))["payload"] == {"status": "Accepted"}
                await eventually(lambda: len(frames(server, "StatusNotification")) > mark, what="the triggered StatusNotification")
                assert (await call(http, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}))["payload"] == {"status": "NotImplemented"}
                assert (await call(http, "DataTransfer", {"vendorId": "com.example"}))["payload"] == {"status": "UnknownVendorId"}
                assert (await call(http, "UnlockConnector", {"connectorId": 1}))["payload"] == {"status": "Unlocked"}
                assert (await call(http, "ClearCache"))["payload"] == {"status": "Accepted"}
                answer = await call(http, "GetDiagnostics", {"location": "ftp://example.com/"})
                assert (answer["answer"], answer["errorCode"]) == ("CALLERROR", "NotSupported")
                _, _, answer = await api(http, "POST", "/api/chargers/CP1/call", {"action": "MakeCoffee", "payload": {}, "validate": False}, expect=200)
                assert (answer["answer"], answer["errorCode"]) == ("CALLERROR", "NotImplemented")
                _, _, answer = await api(http, "POST", "/api/chargers/CP1/call",
                                         {"action": "ChangeAvailability", "payload": {"connectorId": "1", "type": "Inoperative"}, "validate": False}, expect=200)
                assert (answer["answer"], answer["errorCode"]) == ("CALLERROR", "TypeConstraintViolation")
                assert statuses(server)[1] == "Available"

    run(main())


# ---- BootNotification Pending through the API; transaction messages through CSMS faults ------------


def test_boot_pending_until_the_csms_accepts(tmp_path):
    """A CSMS whose boot policy is Pending: the charger waits the retry
    interval between BootNotifications and sends nothing else (bootViolations
    0, C16 §4.2.1); it answers CSMS calls meanwhile; the API refuses a remote
    start (424). Once the policy is Accepted the charger is accepted at its
    next BootNotification and reports its connectors."""

    async def main():
        async with csms_http(boot_policy="Pending", retry_interval=1, id_tags={TAG: "Accepted"}) as (server, http):
            async with charger(server.ws_url, str(tmp_path)) as c:
                await eventually(lambda: (server.storage.get_charger("CP1") or {}).get("boot_status") == "Pending", what="Pending")
                await c.wait_event("boot", status="Pending", interval=1)
                async with c.console() as b:
                    await b.cmd("plug")  # a status change while Pending: kept until Accepted
                await c.wait_event("status", connector=1, status="Preparing")
                assert (await call(http, "GetConfiguration", {"key": ["ConnectionTimeOut"]}))["payload"]["configurationKey"][0]["value"] == "60"
                status, _, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": TAG})
                assert status == 424, body
                _, _, body = await api(http, "PUT", "/api/chargers/CP1/boot-policy", {"status": "Accepted", "heartbeatInterval": 120}, expect=200)
                await accepted(server)
                boots = frames(server, "BootNotification")
                assert len(boots) >= 2
                calls = [r["action"] for r in server.message_log.query(charger="CP1") if r["type"] == "CALL" and r["dir"] == "in"]
                first_other = next(i for i, a in enumerate(calls) if a != "BootNotification")
                assert set(calls[first_other:]) <= {"StatusNotification", "Heartbeat"} and calls[first_other - 1] == "BootNotification"
                assert server.storage.get_charger("CP1")["boot_violations"] == 0
                assert (await c.wait_event("boot", status="Accepted"))["interval"] == 120
                await eventually(lambda: statuses(server) == {0: "Available", 1: "Preparing"}, what="Preparing reported")

    run(main())


def test_transaction_messages_survive_csms_errors_and_a_lost_answer(tmp_path):
    """C16 §3.7: a StartTransaction answered with a CALLERROR is sent again
    after TransactionMessageRetryInterval with a new messageId; a
    StopTransaction whose answer is lost with the connection is sent again
    after reconnecting. The CSMS ends with one session, stopped once."""

    async def main():
        async with bench_charger(str(tmp_path), id_tags={TAG: "Accepted"}, ocpp={"TransactionMessageRetryInterval": 1}) as (server, http, c):
            await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "call_error", "action": "StartTransaction", "code": "InternalError"}, expect=201)
            await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "drop", "action": "StopTransaction", "process": True}, expect=201)
            async with c.console() as b:
                await b.cmd("plug")
                await b.cmd("card " + TAG)
                await b.wait_event("transaction_started")
                await eventually(lambda: server.storage.active_transactions("CP1"), what="the start retried")
                await b.cmd("card " + TAG)
                await eventually(lambda: server.storage.ledger_counts("CP1").get("duplicate_stop"), what="the stop resent")
                await b.status_until(lambda st: st["online"] and st["queued"] == 0)
            starts = ledger(server, "StartTransaction")
            assert [r["outcome"] for r in starts] == ["fault", "started"]
            assert starts[0]["message_id"] != starts[1]["message_id"] and starts[0]["payload"] == starts[1]["payload"]
            stops = ledger(server, "StopTransaction")
            assert [r["outcome"] for r in stops] == ["stopped", "duplicate_stop"]
            assert stops[0]["payload"] == stops[1]["payload"]
            txs = server.storage.list_transactions("CP1")
            assert len(txs) == 1 and txs[0]["status"] == "stopped" and txs[0]["stop_reason"] == "Local"
            assert c.seen("call_error", action="StartTransaction")

    run(main())


# ---- the emulator as a process: a power cut mid-session -------------------------------------------


def test_power_cut_mid_session_ends_it_with_power_loss_after_the_reboot(tmp_path):
    """`python -m host_tools.emulator` killed (SIGKILL: no goodbye, as in a
    power cut) while charging, then started again on the same state
    directory: after the BootNotification the transaction is stopped with
    reason PowerLoss, the last reading written to flash and its time
    (C16 §7.36, C16 §4.2); every MeterValues taken before the cut arrives,
    before the stop."""
    import asyncio
    import json
    import os
    import signal
    import sys

    from tests.integration.agent_kit import AsyncBench
    from tests.support import repo_root

    async def start_emulator(url):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "host_tools.emulator", "--csms", url, "--id", "CP1", "--state-dir", str(tmp_path),
            "--console", "tcp:127.0.0.1:0", "--meter-link", "inproc", "--quiet", "--backoff-min", "0.05",
            "--backoff-base", "0.1", "--backoff-max", "0.3", "--set", "MeterValueSampleInterval=1",
            cwd=repo_root(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line, "the emulator ended before opening its console"
            msg = json.loads(line)
            if msg.get("event") == "console":
                return proc, msg["url"]

    async def main():
        async with csms_http(id_tags={TAG: "Accepted"}) as (server, http):
            proc, url = await start_emulator(server.ws_url)
            try:
                await accepted(server)
                async with AsyncBench(url) as b:
                    await b.cmd("plug")
                    await b.cmd("charge")
                    await b.cmd("card " + TAG)
                    await eventually(lambda: server.storage.ledger_counts("CP1").get("meter_values", 0) >= 2, what="two MeterValues")
                os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
                await eventually(lambda: "CP1" not in server.sessions, what="the CSMS to see the connection gone")
                proc, url = await start_emulator(server.ws_url)
                await accepted(server, since_boots=1)
                await eventually(lambda: server.storage.list_transactions("CP1")[0]["status"] == "stopped", what="the stop")
            finally:
                if proc.returncode is None:
                    proc.terminate()
                    await proc.wait()
            tx = server.storage.list_transactions("CP1")[0]
            assert tx["stop_reason"] == "PowerLoss"
            entries = ledger(server)
            stop = [r for r in entries if r["action"] == "StopTransaction"]
            mvs = [r for r in entries if r["action"] == "MeterValues"]
            assert len(stop) == 1 and entries.index(stop[0]) > entries.index(mvs[-1])
            last = mvs[-1]["payload"]["meterValue"][0]
            energy = [float(v["value"]) for v in last["sampledValue"] if v["measurand"] == "Energy.Active.Import.Register"][0]
            assert stop[0]["payload"]["meterStop"] == int(energy + 0.5)
            assert stop[0]["payload"]["timestamp"] == last["timestamp"]
            log = [r["action"] for r in server.message_log.query(charger="CP1") if r["type"] == "CALL" and r["dir"] == "in"]
            second_boot = [i for i, a in enumerate(log) if a == "BootNotification"][1]
            assert log.index("StopTransaction") > second_boot
            assert server.storage.ledger_counts("CP1")["started"] == 1

    run(main())


# ---- the fleet model -------------------------------------------------------------------------------


def test_a_fleet_of_emulated_chargers_runs_sessions_against_the_bench_csms(tmp_path):
    """`--count N --sessions` (host_tools/emulator/fleet.py): every charger
    runs the real agent on the fleet model with a simulated driver; each
    session reaches the CSMS as one start and one stop, nothing refused."""
    from host_tools.emulator.__main__ import parse_args
    from host_tools.emulator.fleet import run_fleet

    async def main():
        async with csms_http(id_tags={"TAG-EMU": "Accepted"}) as (server, http):
            args = parse_args(["--csms", server.ws_url, "--id", "FL", "--count", "4", "--state-dir", str(tmp_path),
                               "--sessions", "--session-every", "1", "--no-sync", "--quiet", "--backoff-min", "0.05"])
            stats = await run_fleet(args, duration_s=3.5)
            assert stats["sessions"] >= 8
            counts = server.storage.ledger_counts()
            assert set(counts) <= {"started", "stopped"}, counts
            assert counts["started"] >= 8 and counts["stopped"] >= counts["started"] - 4
            for i in range(1, 5):
                cp = "FL-%04d" % i
                row = server.storage.get_charger(cp)
                assert row["boot_count"] == 1 and row["boot_violations"] == 0 and row["model"] == "Emulator"
                txs = server.storage.list_transactions(cp)
                assert txs and all(t["stop_reason"] in (None, "Local") for t in txs)
            done = [t for t in server.storage.list_transactions() if t["status"] == "stopped"]
            assert all(t["meter_stop"] >= t["meter_start"] for t in done)
            assert sum(t["meter_stop"] - t["meter_start"] for t in done) > 0

    run(main())
