"""Bench CSMS HTTP API over real HTTP, with charge points written with the
`ocpp` package connected over real WebSockets: every route and every error
status."""
import asyncio
import logging
import time
import uuid

from tests.integration.csms_peers import api, charge_point, csms_http, now, run

PROBLEM = "application/problem+json"


def assert_problem(status, headers, body, expected_status, error_type=None):
    assert status == expected_status, (status, body)
    assert headers["Content-Type"].startswith(PROBLEM)
    assert body["status"] == expected_status
    for member in ("type", "title", "detail", "instance", "request_id"):
        assert member in body, member
    assert headers["X-Request-ID"] == body["request_id"]
    if error_type is None:
        assert "error" not in body
    else:
        assert body["error"]["type"] == error_type
        assert body["error"]["details"]


def test_chargers_list_and_get_with_connector_status():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP16") as cp16, charge_point(server, "CP201", "ocpp2.0.1") as cp201:
                from ocpp.v16 import call as c16
                from ocpp.v201 import call as c201
                await cp16.call(c16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted",
                                                       info="RCD tripped", vendor_error_code="E42"))
                await cp201.call(c201.StatusNotification(timestamp=now(), connector_status="Occupied", evse_id=1,
                                                         connector_id=1))
                _, _, body = await api(http, "GET", "/api/chargers", expect=200)
                by_id = {c["id"]: c for c in body["chargers"]}
                assert by_id["CP16"]["ocppVersion"] == "ocpp1.6" and by_id["CP16"]["connected"] is True
                assert by_id["CP16"]["bootStatus"] == "Accepted" and by_id["CP16"]["vendor"] == "PeerVendor"
                assert by_id["CP16"]["connectors"] == [{
                    "connectorId": 1, "status": "Faulted", "errorCode": "GroundFailure", "info": "RCD tripped",
                    "vendorId": None, "vendorErrorCode": "E42", "timestamp": None,
                    "updatedAt": by_id["CP16"]["connectors"][0]["updatedAt"]}]
                c = by_id["CP201"]["connectors"][0]
                assert (c["evseId"], c["connectorId"], c["status"]) == (1, 1, "Occupied")
                _, _, one = await api(http, "GET", "/api/chargers/CP201", expect=200)
                assert one["model"] == "M2" and one["ocppVersion"] == "ocpp2.0.1"
            # After disconnecting, the charger is still listed, not connected.
            await asyncio.sleep(0)
            for _ in range(100):
                _, _, one = await api(http, "GET", "/api/chargers/CP16", expect=200)
                if not one["connected"]:
                    break
                await asyncio.sleep(0.01)
            assert one["connected"] is False
            status, headers, body = await api(http, "GET", "/api/chargers/NOPE")
            assert_problem(status, headers, body, 404)
            assert body["type"] == "about:blank" and body["title"] == "Not Found"
    run(main())


def test_sessions_list_filters_and_get_with_meter_values():
    async def main():
        async with csms_http(id_tags={"TAG1": "Accepted"}) as (server, http):
            async with charge_point(server, "CP1") as cp, charge_point(server, "CP2") as cp2:
                from ocpp.v16 import call as c16
                t1 = (await cp.start_tx(1, "TAG1", 1000)).transaction_id
                await cp.call(c16.MeterValues(connector_id=1, transaction_id=t1, meter_value=[
                    {"timestamp": now(), "sampled_value": [
                        {"value": "1250", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                        {"value": "16.1", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]}]))
                await cp.stop_tx(t1, 1500)
                t2 = (await cp2.start_tx(2, "TAG1", 7)).transaction_id
                _, _, body = await api(http, "GET", "/api/sessions", expect=200)
                assert [s["id"] for s in body["sessions"]] == [t1, t2]
                _, _, body = await api(http, "GET", "/api/sessions?status=active", expect=200)
                assert [s["id"] for s in body["sessions"]] == [t2]
                _, _, body = await api(http, "GET", "/api/sessions?charger=CP1", expect=200)
                assert [s["id"] for s in body["sessions"]] == [t1]
                _, _, s = await api(http, "GET", "/api/sessions/%d" % t1, expect=200)
                assert (s["status"], s["meterStart"], s["meterStop"], s["energyWh"]) == ("stopped", 1000, 1500, 500)
                assert s["meterValues"][0]["value"] == "1250"
                assert s["meterValues"][1] == {"timestamp": s["meterValues"][1]["timestamp"], "value": "16.1",
                                               "measurand": "Current.Import", "phase": "L1", "unit": "A",
                                               "evse_id": 0, "connector_id": 1}
                status, headers, body = await api(http, "GET", "/api/sessions?status=open")
                assert_problem(status, headers, body, 400, "validation_failed")
                assert body["field_errors"] == {"status": ["Must be one of: active, stopped."]}
    run(main())


def test_start_session_remotely_both_versions():
    async def main():
        async with csms_http(id_tags={"TAG1": "Accepted"}) as (server, http):
            async with charge_point(server, "CP1") as cp, charge_point(server, "CP2", "ocpp2.0.1") as cp2:
                # 1.6, waiting for the StartTransaction: 201 with the session.
                status, headers, body = await api(http, "POST", "/api/sessions",
                                                  {"chargerId": "CP1", "idTag": "TAG1", "connectorId": 2, "wait": 5},
                                                  expect=201)
                assert headers["Location"] == "/api/sessions/%d" % body["session"]["id"]
                assert body["session"]["connectorId"] == 2 and body["session"]["status"] == "active"
                assert cp.recorder.last_call("RemoteStartTransaction")[3] == {"idTag": "TAG1", "connectorId": 2}
                # Without wait: 202, nothing yet.
                cp.auto_transactions = False
                _, _, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": "TAG1"},
                                       expect=202)
                assert body["status"] == "Accepted" and body["session"] is None
                # 2.0.1: RequestStartTransaction with a remoteStartId the session keeps.
                _, _, body = await api(http, "POST", "/api/sessions",
                                       {"chargerId": "CP2", "idTag": "TAG1", "evseId": 1, "wait": 5}, expect=201)
                assert cp2.recorder.last_call("RequestStartTransaction")[3] == {"idToken": {"idToken": "TAG1", "type": "ISO14443"},
                                   "remoteStartId": body["remoteStartId"], "evseId": 1}
                assert body["session"]["remoteStartId"] == body["remoteStartId"]
                assert body["session"]["transactionId"] == "tx-%d" % body["remoteStartId"]
                # Rejected by the charger: 424.
                cp.remote_start_status = "Rejected"
                status, headers, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": "TAG1"})
                assert_problem(status, headers, body, 424, "charging_provider_error")
                assert "answered Rejected" in body["error"]["details"]
                assert body["charger_answer"]["payload"] == {"status": "Rejected"}
            # Offline: 424.
            status, headers, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": "TAG1"})
            assert_problem(status, headers, body, 424, "charging_provider_error")
            assert "offline" in body["error"]["details"]
            # Unknown charger: 404; missing and wrong fields: 400 with field_errors.
            status, headers, body = await api(http, "POST", "/api/sessions", {"chargerId": "X", "idTag": "TAG1"})
            assert_problem(status, headers, body, 404)
            status, headers, body = await api(http, "POST", "/api/sessions", {"connectorId": "1", "colour": 1})
            assert_problem(status, headers, body, 400, "validation_failed")
            assert body["field_errors"] == {"chargerId": ["This field is required."],
                                            "idTag": ["This field is required."],
                                            "connectorId": ["Must be an integer."], "colour": ["Unknown field."]}
            assert body["type"].endswith("/api/problems/validation-failed")
    run(main())


def test_stop_session_statuses_of_the_stop_charging_contract():
    async def main():
        async with csms_http(id_tags={"TAG1": "Accepted"}, call_timeout=0.5) as (server, http):
            async with charge_point(server, "CP1") as cp:
                cp.auto_transactions = False
                t1 = (await cp.start_tx(1, "TAG1", 0)).transaction_id
                # Accepted, not waiting: 202, the session still active.
                _, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t1, expect=202)
                assert body["session"]["status"] == "active" and body["session"]["stopRequestedAt"]
                assert cp.recorder.last_call("RemoteStopTransaction")[3] == {"transactionId": t1}
                # Waiting: 200 once the StopTransaction arrives.
                cp.auto_transactions = True
                _, _, body = await api(http, "POST", "/api/sessions/%d/stop" % t1, {"wait": 5}, expect=200)
                assert body["session"]["status"] == "stopped" and body["session"]["stopReason"] == "Remote"
                # Already stopped: 409 already_stopped.
                status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t1)
                assert_problem(status, headers, body, 409, "already_stopped")
                assert body["detail"] == "User session is already stopped"
                # Unknown session: 404 with detail only.
                for sid in ("999", "abc"):
                    status, headers, body = await api(http, "POST", "/api/sessions/%s/stop" % sid)
                    assert_problem(status, headers, body, 404)
                    assert body["detail"] == "User session with this id was not found"
                t2 = (await cp.start_tx(1, "TAG1", 10)).transaction_id
                # Rejected: 424.
                cp.remote_stop_status = "Rejected"
                status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t2)
                assert_problem(status, headers, body, 424, "charging_provider_error")
                assert body["detail"] == "Charging Error"
                assert body["error"]["details"] == \
                    "Charging provider didn't manage to stop charging: charger CP1 answered Rejected"
                # CALLERROR: 424.
                cp.route_map.pop("RemoteStopTransaction")
                status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t2)
                assert_problem(status, headers, body, 424, "charging_provider_error")
                assert "CALLERROR" in body["error"]["details"]
                assert body["charger_answer"]["answer"] == "CALLERROR"
                # No answer in time: 424.
                cp.route_map["RemoteStopTransaction"] = {"_on_action": _never, "_skip_schema_validation": True}
                started = time.monotonic()
                status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t2)
                assert_problem(status, headers, body, 424, "charging_provider_error")
                assert "did not answer RemoteStopTransaction in time" in body["error"]["details"]
                assert time.monotonic() - started >= 0.5
            # Offline: 424.
            status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t2)
            assert_problem(status, headers, body, 424, "charging_provider_error")
            assert "offline" in body["error"]["details"]
    run(main())


async def _never(**_):
    await asyncio.sleep(3600)


def test_stop_session_unexpected_error_has_a_support_code_in_the_log(caplog):
    async def main():
        async with csms_http(id_tags={"TAG1": "Accepted"}) as (server, http):
            async with charge_point(server, "CP1") as cp:
                cp.auto_transactions = False
                t1 = (await cp.start_tx(1, "TAG1", 0)).transaction_id

                def broken(*a, **kw):
                    raise RuntimeError("state transition failed")

                server.storage.update_transaction = broken
                with caplog.at_level(logging.INFO, logger="csms"):
                    status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % t1,
                                                      headers={"X-Request-ID": "req-500"})
                assert_problem(status, headers, body, 500, "unexpected_error")
                assert body["detail"] == "Charging Error"
                code = body["support_code"]
                assert str(uuid.UUID(code)) == code
                assert body["error"]["details"].endswith("Code: " + code)
                logged = [r for r in caplog.records if code in r.getMessage()]
                assert logged and logged[0].request_id == "req-500" and logged[0].exc_info
    run(main())


def test_tokens_401_403_and_sessions_of_other_users_are_404():
    async def main():
        tokens = ["alice:ta:user", "bob:tb:user", "ops:tadmin:admin"]
        async with csms_http(api_tokens=tokens, id_tags={"TAG1": "Accepted"}) as (server, http):
            alice = {"Authorization": "Bearer ta"}
            bob = {"Authorization": "Bearer tb"}
            admin = {"Authorization": "Bearer tadmin"}
            async with charge_point(server, "CP1") as cp:
                cp.auto_transactions = True
                _, _, body = await api(http, "POST", "/api/sessions", {"chargerId": "CP1", "idTag": "TAG1", "wait": 5},
                                       alice, expect=201)
                sid = body["session"]["id"]
                assert body["session"]["owner"] == "alice"
                status, headers, body = await api(http, "GET", "/api/sessions")
                assert_problem(status, headers, body, 401, "unauthorized")
                assert headers["WWW-Authenticate"] == 'Bearer realm="csms"'
                status, headers, body = await api(http, "GET", "/api/sessions", headers={"Authorization": "Bearer x"})
                assert_problem(status, headers, body, 401, "unauthorized")
                assert 'error="invalid_token"' in headers["WWW-Authenticate"]
                # Another user's session is not found, for reading and for stopping.
                status, headers, body = await api(http, "GET", "/api/sessions/%d" % sid, headers=bob)
                assert_problem(status, headers, body, 404)
                status, headers, body = await api(http, "POST", "/api/sessions/%d/stop" % sid, headers=bob)
                assert_problem(status, headers, body, 404)
                assert body["detail"] == "User session with this id was not found"
                _, _, body = await api(http, "GET", "/api/sessions", headers=bob, expect=200)
                assert body["sessions"] == []
                _, _, body = await api(http, "GET", "/api/sessions", headers=admin, expect=200)
                assert [s["id"] for s in body["sessions"]] == [sid]
                # Admin routes refuse user tokens.
                status, headers, body = await api(http, "POST", "/api/chargers/CP1/call",
                                                  {"action": "ClearCache"}, alice)
                assert_problem(status, headers, body, 403, "forbidden")
                await api(http, "POST", "/api/sessions/%d/stop" % sid, {"wait": 5}, alice, expect=200)
                # Public routes need no token.
                await api(http, "GET", "/api/health", expect=200)
    run(main())


def test_send_any_call_and_get_the_answer_or_the_callerror():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1") as cp:
                _, _, body = await api(http, "POST", "/api/chargers/CP1/call",
                                       {"action": "GetConfiguration", "payload": {"key": ["HeartbeatInterval"]}},
                                       expect=200)
                assert body["answer"] == "CALLRESULT"
                assert body["payload"] == {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False,
                                                                 "value": "60"}], "unknownKey": []}
                assert body["rttMs"] >= 0
                # A CALL the peer has no handler for: its CALLERROR comes back with 200.
                _, _, body = await api(http, "POST", "/api/chargers/CP1/call", {"action": "ClearCache"}, expect=200)
                assert body["answer"] == "CALLERROR" and body["errorCode"] == "NotImplemented"
                # The payload is checked against the schema first.
                status, headers, body = await api(http, "POST", "/api/chargers/CP1/call",
                                                  {"action": "ChangeAvailability", "payload": {"connectorId": "0"}})
                assert_problem(status, headers, body, 400, "validation_failed")
                assert list(body["field_errors"]) == ["payload.connectorId"] or "payload" in body["field_errors"]
                status, headers, body = await api(http, "POST", "/api/chargers/CP1/call", {"action": "Bogus"})
                assert_problem(status, headers, body, 400, "validation_failed")
                assert body["field_errors"] == {"action": ["Unknown action Bogus for ocpp1.6"]}
                # validate: false sends it anyway.
                _, _, body = await api(http, "POST", "/api/chargers/CP1/call",
                                       {"action": "Bogus", "payload": {"a": 1}, "validate": False}, expect=200)
                assert body["answer"] == "CALLERROR"
                assert cp.recorder.last_call("Bogus")[3] == {"a": 1}
            status, headers, body = await api(http, "POST", "/api/chargers/CP1/call", {"action": "ClearCache"})
            assert_problem(status, headers, body, 424, "charging_provider_error")
            status, headers, body = await api(http, "POST", "/api/chargers/NOPE/call", {"action": "ClearCache"})
            assert_problem(status, headers, body, 404)
    run(main())


def test_change_availability_both_versions():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1") as cp, charge_point(server, "CP2", "ocpp2.0.1") as cp2:
                _, _, body = await api(http, "POST", "/api/chargers/CP1/availability",
                                       {"type": "Inoperative", "connectorId": 1}, expect=200)
                assert body["status"] == "Accepted"
                assert cp.recorder.last_call("ChangeAvailability")[3] == {"connectorId": 1, "type": "Inoperative"}
                await api(http, "POST", "/api/chargers/CP2/availability",
                          {"type": "Operative", "evseId": 1, "connectorId": 1}, expect=200)
                assert cp2.recorder.last_call("ChangeAvailability")[3] == {
                    "operationalStatus": "Operative", "evse": {"id": 1, "connectorId": 1}}
                cp.availability_status = "Rejected"
                status, headers, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Operative"})
                assert_problem(status, headers, body, 424, "charging_provider_error")
                status, headers, body = await api(http, "POST", "/api/chargers/CP1/availability", {"type": "Off"})
                assert_problem(status, headers, body, 400, "validation_failed")
                assert body["field_errors"] == {"type": ["Must be one of: Operative, Inoperative."]}
    run(main())


def test_get_and_set_configuration_both_versions():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1") as cp, charge_point(server, "CP2", "ocpp2.0.1") as cp2:
                _, _, body = await api(http, "GET", "/api/chargers/CP1/configuration?key=HeartbeatInterval&key=Nope",
                                       expect=200)
                assert body["configuration"] == [{"key": "HeartbeatInterval", "value": "60", "readonly": False}]
                assert body["unknownKeys"] == ["Nope"]
                _, _, body = await api(http, "PUT", "/api/chargers/CP1/configuration",
                                       {"key": "HeartbeatInterval", "value": "30"}, expect=200)
                assert body["results"] == [{"key": "HeartbeatInterval", "status": "Accepted"}]
                assert cp.config["HeartbeatInterval"] == "30"
                _, _, body = await api(http, "PUT", "/api/chargers/CP1/configuration",
                                       {"settings": [{"key": "Nope", "value": "1"}]}, expect=200)
                assert body["results"] == [{"key": "Nope", "status": "NotSupported"}]
                _, _, body = await api(http, "GET", "/api/chargers/CP2/configuration?"
                                       "key=OCPPCommCtrlr/HeartbeatInterval&key=X/Y", expect=200)
                assert body["configuration"] == [
                    {"key": "OCPPCommCtrlr/HeartbeatInterval", "value": "60", "status": "Accepted"},
                    {"key": "X/Y", "value": None, "status": "UnknownVariable"}]
                assert body["unknownKeys"] == ["X/Y"]
                _, _, body = await api(http, "PUT", "/api/chargers/CP2/configuration",
                                       {"key": "OCPPCommCtrlr/HeartbeatInterval", "value": "15"}, expect=200)
                assert body["results"] == [{"key": "OCPPCommCtrlr/HeartbeatInterval", "status": "Accepted"}]
                assert cp2.variables[("OCPPCommCtrlr", "HeartbeatInterval")] == "15"
                status, headers, body = await api(http, "GET", "/api/chargers/CP2/configuration")
                assert_problem(status, headers, body, 400, "validation_failed")
                status, headers, body = await api(http, "PUT", "/api/chargers/CP1/configuration", {"key": "A"})
                assert_problem(status, headers, body, 400, "validation_failed")
                assert body["field_errors"] == {"value": ["This field is required."]}
    run(main())


def test_boot_policy_and_id_tags_routes_shape_the_answers():
    async def main():
        async with csms_http() as (server, http):
            _, _, body = await api(http, "PUT", "/api/chargers/CP1/boot-policy",
                                   {"status": "Pending", "retryInterval": 7}, expect=200)
            assert body["bootPolicy"] == "Pending" and body["retryInterval"] == 7
            await api(http, "PUT", "/api/chargers/CP1/id-tags", {"idTags": [
                {"idTag": "OK", "status": "Accepted", "parentIdTag": "FLEET", "expiryDate": "2099-01-01T00:00:00Z"},
                {"idTag": "OLD", "expiryDate": "2001-01-01T00:00:00Z"},
                {"idTag": "BAD", "status": "Blocked"}]}, expect=200)
            await api(http, "PUT", "/api/chargers/*/id-tags", {"idTags": [{"idTag": "ANY"}]}, expect=200)
            _, _, body = await api(http, "GET", "/api/chargers/CP1/id-tags", expect=200)
            assert [t["idTag"] for t in body["idTags"]] == ["BAD", "OK", "OLD"]
            async with charge_point(server, "CP1", boot=False) as cp:
                from ocpp.v16 import call as c16
                res = await cp.boot()
                assert (res.status, res.interval) == ("Pending", 7)
                await api(http, "PUT", "/api/chargers/CP1/boot-policy",
                          {"status": "Accepted", "heartbeatInterval": 120}, expect=200)
                res = await cp.boot()
                assert (res.status, res.interval) == ("Accepted", 120)
                answers = {}
                for tag in ("OK", "OLD", "BAD", "ANY", "WHO"):
                    await cp.call(c16.Authorize(id_tag=tag))
                    answers[tag] = cp.recorder.last_answer()[2]["idTagInfo"]
                assert answers["OK"] == {"status": "Accepted", "parentIdTag": "FLEET",
                                         "expiryDate": "2099-01-01T00:00:00Z"}
                assert answers["OLD"]["status"] == "Expired"
                assert answers["BAD"] == {"status": "Blocked"}
                assert answers["ANY"] == {"status": "Accepted"}
                assert answers["WHO"] == {"status": "Invalid"}
                await api(http, "PUT", "/api/chargers/CP1/id-tags", {"idTags": [], "authorizeUnknown": True},
                          expect=200)
                assert (await cp.call(c16.Authorize(id_tag="WHO"))).id_tag_info == {"status": "Accepted"}
            status, headers, body = await api(http, "PUT", "/api/chargers/CP1/boot-policy", {"status": "Maybe"})
            assert_problem(status, headers, body, 400, "validation_failed")
            status, headers, body = await api(http, "PUT", "/api/chargers/CP1/id-tags",
                                              {"idTags": [{"status": "Accepted"}]})
            assert_problem(status, headers, body, 400, "validation_failed")
            assert body["field_errors"] == {"idTags": ["Entry 0: idTag: This field is required."]}
    run(main())


def test_invalid_json_unknown_route_and_method_not_allowed():
    async def main():
        async with csms_http() as (server, http):
            async with http.post("/api/sessions", data=b"{not json", headers={"Content-Type": "application/json"}) as r:
                body = await r.json(content_type=None)
                assert_problem(r.status, r.headers, body, 400, "invalid_json")
            status, headers, body = await api(http, "POST", "/api/sessions", [1, 2])
            assert_problem(status, headers, body, 400, "validation_failed")
            status, headers, body = await api(http, "GET", "/api/nothing/here")
            assert_problem(status, headers, body, 404)
            status, headers, body = await api(http, "DELETE", "/api/sessions/1")
            assert_problem(status, headers, body, 405, "method_not_allowed")
            assert {m.strip() for m in headers["Allow"].split(",")} == {"GET"}
            status, headers, body = await api(http, "PATCH", "/api/chargers/CP1/faults")
            assert_problem(status, headers, body, 405, "method_not_allowed")
            assert {m.strip() for m in headers["Allow"].split(",")} == {"GET", "POST", "DELETE"}
    run(main())


def test_rate_limit_429_with_retry_after_then_success():
    async def main():
        async with csms_http(rate_limits={"read": (2, 1.0)}) as (server, http):
            await api(http, "GET", "/api/chargers", expect=200)
            await api(http, "GET", "/api/chargers", expect=200)
            status, headers, body = await api(http, "GET", "/api/chargers")
            assert_problem(status, headers, body, 429, "rate_limited")
            retry_after = int(headers["Retry-After"])
            assert retry_after == 1
            # Another class of routes is limited on its own.
            await api(http, "PUT", "/api/chargers/CP1/boot-policy", {"status": "Accepted"}, expect=200)
            await asyncio.sleep(retry_after)  # waiting out Retry-After is the behaviour under test
            await api(http, "GET", "/api/chargers", expect=200)
    run(main())


def test_request_id_echoed_or_generated_and_correlation_id_in_the_message_log():
    async def main():
        async with csms_http() as (server, http):
            for method, path, expect in (("GET", "/api/health", 200), ("GET", "/api/nope", 404),
                                         ("DELETE", "/api/health", 405)):
                _, headers, _ = await api(http, method, path, headers={"X-Request-ID": "abc-123"}, expect=expect)
                assert headers["X-Request-ID"] == "abc-123"
                _, headers, _ = await api(http, method, path, expect=expect)
                assert str(uuid.UUID(headers["X-Request-ID"])) == headers["X-Request-ID"]
            async with charge_point(server, "CP1"):
                _, headers, _ = await api(http, "POST", "/api/chargers/CP1/call", {"action": "GetConfiguration"},
                                          headers={"X-Correlation-ID": "corr-9", "X-Request-ID": "r9"}, expect=200)
                assert headers["X-Correlation-ID"] == "corr-9"
                _, _, body = await api(http, "GET", "/api/messages?correlation_id=corr-9", expect=200)
                records = body["messages"]
                assert [(r["dir"], r["type"], r["action"]) for r in records] == [
                    ("out", "CALL", "GetConfiguration"), ("in", "CALLRESULT", "GetConfiguration")]
                assert records[0]["id"] == records[1]["id"] and records[1]["rtt_ms"] >= 0
                # Secrets are redacted in the log.
                assert {"key": "AuthorizationKey", "readonly": False, "value": "***"} in \
                    records[1]["payload"]["configurationKey"]
                # Without X-Correlation-ID the request id correlates.
                await api(http, "POST", "/api/chargers/CP1/call", {"action": "GetConfiguration"},
                          headers={"X-Request-ID": "r10"}, expect=200)
                _, _, body = await api(http, "GET", "/api/messages?correlation_id=r10", expect=200)
                assert len(body["messages"]) == 2
    run(main())


def test_openapi_problem_types_and_ledger_routes():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, http):
            _, _, doc = await api(http, "GET", "/api/openapi.json", expect=200)
            assert doc["openapi"] == "3.1.0" and "post" in doc["paths"]["/api/sessions/{session_id}/stop"]
            _, _, body = await api(http, "GET", "/api/problems/already-stopped", expect=200)
            assert body["status"] == 409 and body["error_type"] == "already_stopped"
            await api(http, "GET", "/api/problems/nope", expect=404)
            async with charge_point(server, "CP1") as cp:
                ts = now()
                a = await cp.start_tx(1, "T", 5, ts)
                b = await cp.start_tx(1, "T", 5, ts)
                assert a.transaction_id == b.transaction_id
            _, _, body = await api(http, "GET", "/api/ledger?charger=CP1", expect=200)
            assert [e["outcome"] for e in body["ledger"]] == ["started", "duplicate_start"]
            assert body["ledger"][1]["payload"]["meterStart"] == 5
            _, _, body = await api(http, "GET", "/api/ledger/counts", expect=200)
            assert body["counts"] == {"started": 1, "duplicate_start": 1}
            status, headers, body = await api(http, "GET", "/api/ledger?limit=x")
            assert_problem(status, headers, body, 400, "validation_failed")
    run(main())


def test_password_route_guards_the_websocket_handshake():
    async def main():
        import base64

        import websockets

        from tests.integration.csms_peers import connect

        async with csms_http() as (server, http):
            await api(http, "PUT", "/api/chargers/CP1/password", {"password": "s3cret-password16"}, expect=200)
            try:
                await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"])
                raise AssertionError("connected without a password")
            except websockets.exceptions.InvalidStatus as exc:
                assert exc.response.status_code == 401
            good = base64.b64encode(b"CP1:s3cret-password16").decode()
            ws = await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"],
                               additional_headers={"Authorization": "Basic " + good})
            assert ws.subprotocol == "ocpp1.6"
            await ws.close()
            _, _, body = await api(http, "GET", "/api/chargers/CP1", expect=200)
            assert body["hasPassword"] is True
    run(main())
