"""Bench CSMS OCPP behaviour, frames on the wire: CALLERROR codes per version,
boot policies, transaction messages (duplicates, -1, ledger), handshake rules."""
import asyncio
import base64
import json
import os
import ssl
import subprocess

import pytest
import websockets

from tests.integration.csms_peers import api, charge_point, connect, csms_http, exchange, now, raw_ws, run

BOOT16 = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT201 = {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}


def _frame(*parts):
    return json.dumps(list(parts))


@pytest.mark.parametrize("version,formation,occurrence", [
    ("ocpp1.6", "FormationViolation", "OccurenceConstraintViolation"),
    ("ocpp2.0.1", "FormatViolation", "OccurrenceConstraintViolation"),
])
def test_callerror_codes_are_spelled_for_the_negotiated_version(version, formation, occurrence):
    async def main():
        async with csms_http() as (server, _):
            async with raw_ws(server, "CP1", version) as ws:
                boot = BOOT16 if version == "ocpp1.6" else BOOT201
                assert (await exchange(ws, _frame(2, "b1", "BootNotification", boot)))[0] == 3
                missing = dict(boot)
                missing.pop("chargePointVendor" if version == "ocpp1.6" else "chargingStation")
                answer = await exchange(ws, _frame(2, "m1", "BootNotification", missing))
                assert answer[:3] == [4, "m1", occurrence]
                assert "is a required property" in answer[3]
                answer = await exchange(ws, _frame(2, "m2", "Heartbeat", {"extra": 1}))
                assert answer[:3] == [4, "m2", formation]
                status = {"connectorId": "1", "errorCode": "NoError", "status": "Available"} \
                    if version == "ocpp1.6" else \
                    {"timestamp": now(), "connectorStatus": "Available", "evseId": "1", "connectorId": 1}
                answer = await exchange(ws, _frame(2, "m3", "StatusNotification", status))
                assert answer[:3] == [4, "m3", "TypeConstraintViolation"]
                assert answer[4] == {"path": "connectorId" if version == "ocpp1.6" else "evseId"}
                status = {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"} \
                    if version == "ocpp1.6" else \
                    {"timestamp": now(), "connectorStatus": "Sleeping", "evseId": 1, "connectorId": 1}
                answer = await exchange(ws, _frame(2, "m4", "StatusNotification", status))
                assert answer[:3] == [4, "m4", "PropertyConstraintViolation"]
                # Unknown action: NotImplemented; an action of the version the CSMS
                # does not take from a charger: NotSupported (J16 Table 7, P4 Table 8).
                assert await exchange(ws, _frame(2, "m5", "FlyToTheMoon", {})) == \
                    [4, "m5", "NotImplemented", "Unknown action FlyToTheMoon", {}]
                remote = "RemoteStartTransaction" if version == "ocpp1.6" else "RequestStartTransaction"
                assert await exchange(ws, _frame(2, "m6", remote, {})) == \
                    [4, "m6", "NotSupported", "%s is not supported by this CSMS" % remote, {}]
                # Not JSON, or not an RPC frame: id "-1" (P4 §4.2.3).
                rpc = "FormationViolation" if version == "ocpp1.6" else "RpcFrameworkError"
                assert await exchange(ws, "[2, \"m7\", \"Heartbeat\"") == \
                    [4, "-1", rpc, "Not a valid OCPP-J RPC frame", {}]
                assert await exchange(ws, "{}") == [4, "-1", rpc, "Not a valid OCPP-J RPC frame", {}]
                assert await exchange(ws, _frame(2, "m8", "Heartbeat")) == \
                    [4, "m8", rpc, "A CALL is [2, id, action, {payload}]", {}]
                # Unknown message type: 2.0.1 answers MessageTypeNotSupported; 1.6 ignores it.
                await ws.send(_frame(7, "m9", "Heartbeat", {}))
                answer = await exchange(ws, _frame(2, "m10", "Heartbeat", {}))
                if version == "ocpp1.6":
                    assert answer[:2] == [3, "m10"]
                else:
                    assert answer == [4, "m9", "MessageTypeNotSupported", "Unknown message type 7", {}]
                    assert (json.loads(await ws.recv()))[:2] == [3, "m10"]
    run(main())


def test_boot_policies_pending_and_rejected():
    async def main():
        async with csms_http(boot_policy="Pending", retry_interval=5) as (server, http):
            async with raw_ws(server, "CP201", "ocpp2.0.1") as ws:
                answer = await exchange(ws, _frame(2, "b1", "BootNotification", BOOT201))
                assert answer[2]["status"] == "Pending" and answer[2]["interval"] == 5
                # B02.FR.09: a CALL other than BootNotification while Pending: SecurityError.
                assert await exchange(ws, _frame(2, "h1", "Heartbeat", {})) == \
                    [4, "h1", "SecurityError", "Not accepted: boot status is Pending", {}]
                # ... unless triggered by a TriggerMessage the station accepted.
                trigger = asyncio.ensure_future(api(http, "POST", "/api/chargers/CP201/call", {
                    "action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}}, expect=200))
                call = json.loads(await ws.recv())
                assert call[2] == "TriggerMessage"
                await ws.send(_frame(3, call[1], {"status": "Accepted"}))
                await trigger
                assert (await exchange(ws, _frame(2, "h2", "Heartbeat", {})))[0] == 3
                assert (await exchange(ws, _frame(2, "h3", "Heartbeat", {})))[2] == "SecurityError"
                # No remote start to a charger that is not accepted.
                status, _, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP201", "idTag": "T"})
                assert status == 424 and "is not accepted (boot status Pending)" in body["error"]["details"]
                await api(http, "PUT", "/api/chargers/CP201/boot-policy", {"status": "Accepted"}, expect=200)
                answer = await exchange(ws, _frame(2, "b2", "BootNotification", BOOT201))
                assert answer[2]["status"] == "Accepted" and answer[2]["interval"] == 60
                assert (await exchange(ws, _frame(2, "h4", "Heartbeat", {})))[0] == 3
            # 1.6 names no CSMS answer: processed, and counted as a violation.
            await api(http, "PUT", "/api/chargers/CP16/boot-policy", {"status": "Rejected", "retryInterval": 30},
                      expect=200)
            async with raw_ws(server, "CP16") as ws:
                answer = await exchange(ws, _frame(2, "b1", "BootNotification", BOOT16))
                assert (answer[2]["status"], answer[2]["interval"]) == ("Rejected", 30)
                assert (await exchange(ws, _frame(2, "h1", "Heartbeat", {})))[0] == 3
            _, _, body = await api(http, "GET", "/api/chargers/CP16", expect=200)
            assert body["bootViolations"] == 1 and body["bootStatus"] == "Rejected"
    run(main())


def test_start_transaction_resent_after_a_lost_answer_gets_the_same_id():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, _):
            async with charge_point(server, "CP1") as cp:
                ts = now()
                first = await cp.start_tx(1, "T", 100, ts)
                again = await cp.start_tx(1, "T", 100, ts)
                other = await cp.start_tx(1, "T", 100, now())
                assert first.transaction_id == again.transaction_id != other.transaction_id
                assert cp.recorder.last_answer()[2] == {"transactionId": other.transaction_id,
                                                        "idTagInfo": {"status": "Accepted"}}
            tx = server.storage.get_transaction(first.transaction_id)
            assert tx["start_duplicates"] == 1 and tx["meter_start"] == 100
            assert server.storage.ledger_counts("CP1") == {"started": 2, "duplicate_start": 1}
    run(main())


def test_stop_transaction_idempotent_conflicting_minus_one_and_unknown():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, _):
            async with raw_ws(server, "CP1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))
                start = await exchange(ws, _frame(2, "s1", "StartTransaction", {
                    "connectorId": 1, "idTag": "T", "meterStart": 10, "timestamp": "2025-01-01T10:00:00Z"}))
                tx_id = start[2]["transactionId"]
                stop = {"transactionId": tx_id, "meterStop": 510, "timestamp": "2025-01-01T11:00:00Z",
                        "idTag": "T", "reason": "EVDisconnected", "transactionData": [
                            {"timestamp": "2025-01-01T11:00:00Z", "sampledValue": [
                                {"value": "510", "context": "Transaction.End"}]}]}
                assert await exchange(ws, _frame(2, "p1", "StopTransaction", stop)) == \
                    [3, "p1", {"idTagInfo": {"status": "Accepted"}}]
                assert await exchange(ws, _frame(2, "p2", "StopTransaction", stop)) == \
                    [3, "p2", {"idTagInfo": {"status": "Accepted"}}]
                conflicting = dict(stop, meterStop=999)
                assert (await exchange(ws, _frame(2, "p3", "StopTransaction", conflicting)))[0] == 3
                # transactionId -1: its StartTransaction was given up (C16E §3.18).
                minus = {"transactionId": -1, "meterStop": 77, "timestamp": "2025-01-01T12:00:00Z"}
                assert await exchange(ws, _frame(2, "p4", "StopTransaction", minus)) == [3, "p4", {}]
                assert await exchange(ws, _frame(2, "p5", "StopTransaction", minus)) == [3, "p5", {}]
                unknown = {"transactionId": 4242, "meterStop": 88, "timestamp": "2025-01-01T12:00:00Z"}
                assert await exchange(ws, _frame(2, "p6", "StopTransaction", unknown)) == [3, "p6", {}]
            st = server.storage
            tx = st.get_transaction(tx_id)
            assert (tx["status"], tx["meter_stop"], tx["stop_reason"], tx["stop_duplicates"]) == \
                ("stopped", 510, "EVDisconnected", 2)
            assert [m["value"] for m in st.meter_values(tx_id)] == ["510"]
            assert [(e["message_id"], e["outcome"]) for e in st.ledger("CP1")] == [
                ("s1", "started"), ("p1", "stopped"), ("p2", "duplicate_stop"), ("p3", "conflicting_stop"),
                ("p4", "stop_minus_one"), ("p5", "duplicate_stop"), ("p6", "stop_unknown")]
            orphans = [t for t in st.list_transactions("CP1") if t["orphan"]]
            assert [(t["tx_key"], t["meter_stop"], t["status"]) for t in orphans] == \
                [("-1", 77, "stopped"), ("4242", 88, "stopped")]
    run(main())


def test_meter_values_stored_once_with_every_sampled_value():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, _):
            async with raw_ws(server, "CP1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))
                tx_id = (await exchange(ws, _frame(2, "s", "StartTransaction", {
                    "connectorId": 2, "idTag": "T", "meterStart": 0, "timestamp": now()})))[2]["transactionId"]
                mv = {"connectorId": 2, "transactionId": tx_id, "meterValue": [{"timestamp": "2025-01-01T10:00:00Z",
                      "sampledValue": [{"value": "1.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register",
                                        "context": "Sample.Periodic", "location": "Outlet", "format": "Raw"},
                                       {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"}]}]}
                assert await exchange(ws, _frame(2, "v1", "MeterValues", mv)) == [3, "v1", {}]
                assert await exchange(ws, _frame(2, "v2", "MeterValues", mv)) == [3, "v2", {}]
                minus = dict(mv, transactionId=-1)
                assert await exchange(ws, _frame(2, "v3", "MeterValues", minus)) == [3, "v3", {}]
            rows = server.storage.meter_values(tx_id)
            assert [(r["value"], r["unit"], r["measurand"], r["phase"], r["context"], r["location"], r["format"])
                    for r in rows] == [("1.5", "kWh", "Energy.Active.Import.Register", None, "Sample.Periodic",
                                        "Outlet", "Raw"), ("230.1", "V", "Voltage", "L1-N", None, None, None)]
            assert [e["outcome"] for e in server.storage.ledger("CP1")][1:] == \
                ["meter_values", "duplicate", "meter_values"]
    run(main())


def test_transaction_event_flow_duplicates_and_orphans_2_0_1():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, http):
            async with raw_ws(server, "CS1", "ocpp2.0.1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT201))

                def event(kind, seq, wh, **extra):
                    ctx = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(kind, "Sample.Periodic")
                    p = {"eventType": kind, "timestamp": "2025-01-01T10:00:%02dZ" % seq, "triggerReason": "Authorized",
                         "seqNo": seq, "transactionInfo": {"transactionId": "abc"}, "evse": {"id": 1, "connectorId": 1},
                         "meterValue": [{"timestamp": "2025-01-01T10:00:%02dZ" % seq, "sampledValue": [
                             {"value": wh, "context": ctx, "unitOfMeasure": {"unit": "kWh", "multiplier": 0}}]}]}
                    p.update(extra)
                    return p

                started = event("Started", 0, 1.0, idToken={"idToken": "T", "type": "ISO14443"})
                assert await exchange(ws, _frame(2, "e0", "TransactionEvent", started)) == \
                    [3, "e0", {"idTokenInfo": {"status": "Accepted"}}]
                assert await exchange(ws, _frame(2, "e0b", "TransactionEvent", started)) == \
                    [3, "e0b", {"idTokenInfo": {"status": "Accepted"}}]
                assert await exchange(ws, _frame(2, "e1", "TransactionEvent", event("Updated", 1, 2.5))) == \
                    [3, "e1", {}]
                ended = event("Ended", 2, 4.0)
                ended["transactionInfo"]["stoppedReason"] = "EVDisconnected"
                assert await exchange(ws, _frame(2, "e2", "TransactionEvent", ended)) == [3, "e2", {}]
                assert await exchange(ws, _frame(2, "e2b", "TransactionEvent", ended)) == [3, "e2b", {}]
                orphan = event("Updated", 5, 9.0)
                orphan["transactionInfo"]["transactionId"] = "lost-start"
                assert await exchange(ws, _frame(2, "e3", "TransactionEvent", orphan)) == [3, "e3", {}]
            _, _, sessions = await api(http, "GET", "/api/sessions?charger=CS1", expect=200)
            s = sessions["sessions"][0]
            assert (s["transactionId"], s["meterStart"], s["meterStop"], s["energyWh"], s["stopReason"],
                    s["startDuplicates"], s["stopDuplicates"]) == ("abc", 1000, 4000, 3000, "EVDisconnected", 1, 1)
            assert sessions["sessions"][1]["orphan"] is True and sessions["sessions"][1]["status"] == "active"
            _, _, one = await api(http, "GET", "/api/sessions/%d" % s["id"], expect=200)
            assert [m["value"] for m in one["meterValues"]] == [1.0, 2.5, 4.0]
            assert one["meterValues"][0]["unit"] == "kWh" and one["meterValues"][0]["multiplier"] == 0
            assert [(e["message_id"], e["outcome"]) for e in server.storage.ledger("CS1")] == [
                ("e0", "started"), ("e0b", "duplicate_start"), ("e1", "updated"), ("e2", "stopped"),
                ("e2b", "duplicate_stop"), ("e3", "updated")]
    run(main())


def test_handshake_subprotocols_identity_and_replacement():
    async def main():
        async with csms_http(known_only=False) as (server, _):
            # The client's preference wins among offered versions.
            ws = await connect(server.ws_url + "/CPX", subprotocols=["ocpp2.0.1", "ocpp1.6"],
                               additional_headers={"X-Request-ID": "hs-1"})
            assert ws.subprotocol == "ocpp2.0.1"
            assert ws.response.headers["X-Request-ID"] == "hs-1"
            # A second connection with the same identity replaces the first.
            ws2 = await connect(server.ws_url + "/CPX", subprotocols=["ocpp1.6"])
            await asyncio.wait_for(ws.wait_closed(), 3)
            assert ws.close_code == 1000 and ws.close_reason == "Replaced by a new connection"
            assert server.sessions["CPX"].VERSION == "ocpp1.6"
            await ws2.close()
            # No common subprotocol: accepted without one, then closed (J16 §3.2).
            ws = await connect(server.ws_url + "/CPY", subprotocols=["ocpp1.5"])
            await asyncio.wait_for(ws.wait_closed(), 3)
            assert ws.subprotocol is None and ws.close_code == 1002
            # The identity may also follow the root path.
            ws = await connect("ws://127.0.0.1:%d/CPZ" % server.port, subprotocols=["ocpp1.6"])
            assert (await exchange(ws, _frame(2, "b", "BootNotification", BOOT16)))[0] == 3
            await ws.close()
            with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                await connect(server.ws_url + "/" + "x" * 49, subprotocols=["ocpp1.6"])
            assert exc.value.response.status_code == 400
        async with csms_http(known_only=True) as (server, http):
            with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                await connect(server.ws_url + "/NEW", subprotocols=["ocpp1.6"])
            assert exc.value.response.status_code == 404
            await api(http, "PUT", "/api/chargers/NEW/boot-policy", {"status": "Accepted"}, expect=200)
            ws = await connect(server.ws_url + "/NEW", subprotocols=["ocpp1.6"])
            await ws.close()
    run(main())


def test_basic_auth_text_password_and_raw_key_bytes():
    async def main():
        key = "0001020304050607FFFFFFFFFFFFFFFFFFFFFFFF"
        async with csms_http(basic_auth={"AL1000": key}, require_auth=True) as (server, _):
            # J16 §6.2.2's example: the key's bytes, not its hex text.
            header = "Basic QUwxMDAwOgABAgMEBQYH////////////////"
            ws = await connect(server.ws_url + "/AL1000", subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": header})
            await ws.close()
            text = "Basic " + base64.b64encode(("AL1000:" + key).encode()).decode()
            ws = await connect(server.ws_url + "/AL1000", subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": text})
            await ws.close()
            for cp, auth in (("AL1000", "Basic " + base64.b64encode(b"AL1000:wrong").decode()),
                             ("AL1000", "Basic " + base64.b64encode(("OTHER:" + key).encode()).decode()),
                             ("NOPASS", None)):
                with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                    await connect(server.ws_url + "/" + cp, subprotocols=["ocpp1.6"],
                                  additional_headers={"Authorization": auth} if auth else {})
                assert exc.value.response.status_code == 401
                assert exc.value.response.headers["WWW-Authenticate"].startswith('Basic realm="OCPP"')
    run(main())


def test_message_log_file_has_one_redacted_record_per_frame(tmp_path):
    async def main():
        path = tmp_path / "ocpp.jsonl"
        async with csms_http(message_log_path=str(path)) as (server, http):
            async with raw_ws(server, "CP1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))
                call = asyncio.ensure_future(api(http, "POST", "/api/chargers/CP1/call", {
                    "action": "ChangeConfiguration", "payload": {"key": "AuthorizationKey", "value": "ab" * 20}},
                    headers={"X-Correlation-ID": "c-1"}, expect=200))
                frame = json.loads(await ws.recv())
                assert frame[3] == {"key": "AuthorizationKey", "value": "ab" * 20}  # the wire has it
                await ws.send(_frame(3, frame[1], {"status": "Accepted"}))
                await call
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert [(r["dir"], r["type"], r["action"]) for r in records] == [
            ("in", "CALL", "BootNotification"), ("out", "CALLRESULT", "BootNotification"),
            ("out", "CALL", "ChangeConfiguration"), ("in", "CALLRESULT", "ChangeConfiguration")]
        assert records[2]["payload"] == {"key": "AuthorizationKey", "value": "***"}
        assert records[2]["correlation_id"] == records[3]["correlation_id"] == "c-1"
        assert records[3]["rtt_ms"] >= 0 and records[3]["id"] == records[2]["id"] == frame[1]
        assert records[0]["ts"].endswith("Z") and len(records[0]["ts"]) == len("2025-01-01T00:00:00.000Z")
        assert all(r["charger"] == "CP1" for r in records)
    run(main())


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


@pytest.mark.skipif(not any(os.access(os.path.join(p, "openssl"), os.X_OK)
                            for p in os.environ.get("PATH", "").split(os.pathsep)), reason="needs openssl")
def test_tls_serves_wss_and_https(tmp_path):
    cert, key = _self_signed(tmp_path)

    async def main():
        ctx = ssl.create_default_context(cafile=cert)
        async with csms_http(tls_cert=cert, tls_key=key) as (server, http):
            assert server.ws_url.startswith("wss://") and server.base_url.startswith("https://")
            ws = await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"], ssl=ctx)
            assert (await exchange(ws, _frame(2, "b", "BootNotification", BOOT16)))[0] == 3
            await ws.close()
            async with http.get("/api/health", ssl=ctx) as resp:
                assert resp.status == 200
    run(main())


@pytest.mark.skipif(not any(os.access(os.path.join(p, "openssl"), os.X_OK)
                            for p in os.environ.get("PATH", "").split(os.pathsep)), reason="needs openssl")
def test_tls_ca_admits_only_charge_points_with_a_client_certificate_from_that_ca(tmp_path):
    """Security profile 3 at the CSMS (--tls-ca): the handshake needs a client
    certificate signed by the CA; none, or one from another CA, is refused
    before any HTTP is spoken."""
    from tests.integration.pki import make_pki

    pki = make_pki(str(tmp_path))
    server_cert, server_key = pki["server"]
    ca = pki["ca"][0]

    def client_ctx(name=None):
        ctx = ssl.create_default_context(cafile=ca)
        if name is not None:
            ctx.load_cert_chain(*pki[name])
        return ctx

    async def main():
        async with csms_http(tls_cert=server_cert, tls_key=server_key, tls_ca=ca) as (server, _):
            url = server.ws_url + "/CP1"
            assert url.startswith("wss://")
            ws = await connect(url, subprotocols=["ocpp1.6"], ssl=client_ctx("client"))
            assert (await exchange(ws, _frame(2, "b", "BootNotification", BOOT16)))[0] == 3
            await ws.close()
            for name in (None, "client_rogue"):
                with pytest.raises((ssl.SSLError, ConnectionError, websockets.exceptions.InvalidHandshake,
                                    EOFError)):
                    ws = await connect(server.ws_url + "/CP2", subprotocols=["ocpp1.6"], ssl=client_ctx(name))
                    await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))  # TLS 1.3: refused on first read
            assert [row["id"] for row in server.storage.list_chargers()] == ["CP1"]
    run(main())


def test_a_failing_handler_answers_internal_error_and_leaves_nothing_half_stored():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, _):
            async with raw_ws(server, "CP1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))

                def broken(*a, **kw):
                    raise OSError("disk full")

                server.storage.add_meter_values = broken
                mv = {"connectorId": 1, "meterValue": [{"timestamp": now(), "sampledValue": [{"value": "1"}]}]}
                assert await exchange(ws, _frame(2, "v1", "MeterValues", mv)) == \
                    [4, "v1", "InternalError", "An unexpected error occurred.", {}]
                assert (await exchange(ws, _frame(2, "h", "Heartbeat", {})))[0] == 3
            assert server.storage.ledger("CP1") == []  # the ledger row went with the failed work
    run(main())


def test_an_answer_that_breaks_its_schema_is_reported_with_the_answer():
    async def main():
        async with csms_http() as (server, http):
            async with raw_ws(server, "CP1") as ws:
                await exchange(ws, _frame(2, "b", "BootNotification", BOOT16))
                pending = asyncio.ensure_future(api(http, "POST", "/api/chargers/CP1/call",
                                                    {"action": "ClearCache"}, expect=200))
                call = json.loads(await ws.recv())
                await ws.send(_frame(3, call[1], {"status": "Maybe"}))
                _, _, body = await pending
                assert body["answer"] == "CALLRESULT" and body["payload"] == {"status": "Maybe"}
                assert body["schemaError"].startswith("'Maybe' is not one of")
                # An answer nobody waits for is logged as unsolicited.
                await ws.send(_frame(3, "nobody", {}))
                await exchange(ws, _frame(2, "h", "Heartbeat", {}))
                _, _, log = await api(http, "GET", "/api/messages?charger=CP1", expect=200)
                assert [r for r in log["messages"] if r["id"] == "nobody"][0]["unsolicited"] is True
    run(main())
