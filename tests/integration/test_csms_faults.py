"""Fault injection of the bench CSMS: each fault as it arrives at a charge
point written with the `ocpp` package (exact frames from its recorder)."""
import asyncio
import json
import time

import pytest
import websockets
from ocpp.v16 import call as c16
from ocpp.v201 import call as c201

from tests.integration.csms_peers import api, charge_point, connect, csms_http, exchange, now, raw_ws, run


@pytest.mark.parametrize("version,spelled", [("ocpp1.6", "FormationViolation"), ("ocpp2.0.1", "FormatViolation")])
def test_call_error_answers_the_next_calls_with_the_version_spelling(version, spelled):
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1", version) as cp:
                heartbeat = c16.Heartbeat() if version == "ocpp1.6" else c201.Heartbeat()
                _, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {
                    "kind": "call_error", "action": "Heartbeat", "count": 2, "code": "FormatViolation",
                    "description": "injected", "details": {"why": "test"}}, expect=201)
                assert body["rules"][0]["remaining"] == 2
                for _ in range(2):
                    await cp.call(heartbeat, suppress=True)
                    msg_id = json.loads(cp.recorder.sent[-1])[1]
                    assert cp.recorder.received[-1] == json.dumps(
                        [4, msg_id, spelled, "injected", {"why": "test"}], separators=(",", ":"))
                res = await cp.call(heartbeat)
                assert res.current_time
                _, _, body = await api(http, "GET", "/api/chargers/CP1/faults", expect=200)
                assert body["rules"] == [] and body["injected"] == {"call_error": 2}
                with pytest.raises(AssertionError):
                    # 2.0.1-only codes are refused for nothing: they are spelled per version.
                    await api(http, "POST", "/api/chargers/CP1/faults",
                              {"kind": "call_error", "code": "NoSuchCode"}, expect=201)
    run(main())


def test_delay_answers_later_without_blocking_the_connection():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1") as cp:
                await api(http, "POST", "/api/chargers/CP1/faults",
                          {"kind": "delay", "action": "Heartbeat", "seconds": 0.4}, expect=201)
                started = time.monotonic()
                heartbeat = asyncio.ensure_future(cp.call(c16.Heartbeat()))
                # Meanwhile the CSMS still reads the charger's answers to its own CALLs.
                _, _, body = await api(http, "POST", "/api/chargers/CP1/call", {"action": "GetConfiguration"},
                                       expect=200)
                assert body["answer"] == "CALLRESULT"
                assert not heartbeat.done()
                await heartbeat
                assert time.monotonic() - started >= 0.4
                _, _, body = await api(http, "GET", "/api/messages?charger=CP1&action=Heartbeat", expect=200)
                out = body["messages"][-1]
                assert (out["type"], out["fault"], out["delay_s"]) == ("CALLRESULT", "delay", 0.4)
                assert out["rtt_ms"] >= 400
    run(main())


def test_no_answer_ignores_or_loses_the_answer():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, http):
            async with charge_point(server, "CP1", response_timeout=0.3) as cp:
                await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "no_answer", "action": "StartTransaction"},
                          expect=201)
                ts = now()
                with pytest.raises(asyncio.TimeoutError):
                    await cp.start_tx(1, "T", 5, ts)
                lost_id = json.loads(cp.recorder.sent[-1])[1]
                assert not any(json.loads(f)[1] == lost_id for f in cp.recorder.received)
                assert server.storage.list_transactions("CP1") == []  # not processed
                # process: true: stored, answer lost; the retry gets the same transactionId.
                await api(http, "POST", "/api/chargers/CP1/faults",
                          {"kind": "no_answer", "action": "StartTransaction", "process": True}, expect=201)
                with pytest.raises(asyncio.TimeoutError):
                    await cp.start_tx(1, "T", 5, ts)
                stored = server.storage.list_transactions("CP1")
                assert len(stored) == 1
                res = await cp.start_tx(1, "T", 5, ts)
                assert res.transaction_id == stored[0]["id"]
            assert [(e["outcome"], e["fault"]) for e in server.storage.ledger("CP1")] == [
                ("fault", "no_answer"), ("started", None), ("duplicate_start", None)]
    run(main())


def test_drop_on_a_call_after_processing_it_then_the_retry_is_a_duplicate():
    async def main():
        async with csms_http(id_tags={"T": "Accepted"}) as (server, http):
            await api(http, "POST", "/api/chargers/CP1/faults",
                      {"kind": "drop", "action": "StartTransaction", "process": True}, expect=201)
            ts = now()
            async with charge_point(server, "CP1", response_timeout=0.3) as cp:
                with pytest.raises(asyncio.TimeoutError):
                    await cp.start_tx(1, "T", 5, ts)
                await asyncio.wait_for(cp.recorder.ws.wait_closed(), 3)
                assert cp.recorder.ws.close_code == 1006  # TCP cut, no close frame
            async with charge_point(server, "CP1", boot=False) as cp:
                res = await cp.start_tx(1, "T", 5, ts)
            assert res.transaction_id == server.storage.list_transactions("CP1")[0]["id"]
            assert server.storage.ledger_counts("CP1") == {"started": 1, "duplicate_start": 1}
    run(main())


def test_drop_now_with_or_without_a_close_frame_and_refuse_reconnects():
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1") as cp:
                await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "drop", "close_code": 4001}, expect=200)
                await asyncio.wait_for(cp.recorder.ws.wait_closed(), 3)
                assert (cp.recorder.ws.close_code, cp.recorder.ws.close_reason) == (4001, "Injected fault")
            async with charge_point(server, "CP1") as cp:
                await api(http, "POST", "/api/chargers/CP1/faults",
                          {"kind": "drop", "refuse_seconds": 600, "refuse_status": 503}, expect=200)
                await asyncio.wait_for(cp.recorder.ws.wait_closed(), 3)
                assert cp.recorder.ws.close_code == 1006
            with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"])
            assert exc.value.response.status_code == 503
            assert 590 <= int(exc.value.response.headers["Retry-After"]) <= 600
            await api(http, "POST", "/api/chargers/CP1/faults",
                      {"kind": "refuse_reconnect", "seconds": 600, "status": 404}, expect=201)
            with pytest.raises(websockets.exceptions.InvalidStatus) as exc:
                await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"])
            assert exc.value.response.status_code == 404
            _, _, body = await api(http, "GET", "/api/chargers/CP1/faults", expect=200)
            assert body["refusing"]["status"] == 404
            await api(http, "DELETE", "/api/chargers/CP1/faults", expect=200)
            ws = await connect(server.ws_url + "/CP1", subprotocols=["ocpp1.6"])
            await ws.close()
    run(main())


MALFORMED_16 = {
    "invalid_json": '[2,"{id}","ChangeAvailability",{{"connectorId":0,"type":"Operative"}}',
    "wrong_types": '[2,"{id}","ChangeAvailability",{{"connectorId":"0","type":1}}]',
    "missing_fields": '[2,"{id}","ChangeAvailability",{{}}]',
    "unknown_action": '[2,"{id}","UnknownAction",{{"connectorId":0,"type":"Operative"}}]',
    "unknown_message_type": '[7,"{id}","ChangeAvailability",{{"connectorId":0,"type":"Operative"}}]',
}
MALFORMED_201 = {
    "invalid_json": '[2,"{id}","ChangeAvailability",{{"operationalStatus":"Operative"}}',
    "wrong_types": '[2,"{id}","ChangeAvailability",{{"operationalStatus":1}}]',
    "missing_fields": '[2,"{id}","ChangeAvailability",{{}}]',
    "unknown_action": '[2,"{id}","UnknownAction",{{"operationalStatus":"Operative"}}]',
    "unknown_message_type": '[7,"{id}","ChangeAvailability",{{"operationalStatus":"Operative"}}]',
}


@pytest.mark.parametrize("version,table", [("ocpp1.6", MALFORMED_16), ("ocpp2.0.1", MALFORMED_201)])
def test_malformed_frames_arrive_exactly(version, table):
    async def main():
        async with csms_http() as (server, http):
            async with charge_point(server, "CP1", version) as cp:
                for malformation, template in sorted(table.items()):
                    _, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {
                        "kind": "malformed", "malformation": malformation, "timeout": 0.5}, expect=200)
                    expected = template.format(id=body["messageId"])
                    assert body["frame"] == expected
                    await cp.recorder.wait_received(lambda f: f == expected)
                    # The peer's own answer (if any) is reported as it came.
                    answers = [f for f in cp.recorder.sent if body["messageId"] in f]
                    if body["answer"] is None:
                        assert answers == []
                    else:
                        assert json.loads(answers[0])[0] == 4 and body["answer"]["answer"] == "CALLERROR"
                _, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {
                    "kind": "malformed", "malformation": "missing_fields", "action": "Reset",
                    "payload": {"type": "Hard"} if version == "ocpp1.6" else {"type": "Immediate", "evseId": 1},
                    "fields": ["type"], "timeout": 0.5}, expect=200)
                assert body["frame"] == '[2,"%s","Reset",%s]' % (
                    body["messageId"], "{}" if version == "ocpp1.6" else '{"evseId":1}')
                _, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {
                    "kind": "malformed", "malformation": "raw", "raw": "hello", "timeout": 0.2}, expect=200)
                await cp.recorder.wait_received(lambda f: f == "hello")
                _, _, body = await api(http, "GET", "/api/chargers/CP1/faults", expect=200)
                assert body["injected"] == {"malformed": 7}
    run(main())


def test_a_malformed_frame_answered_by_id_minus_one_is_reported():
    async def main():
        async with csms_http() as (server, http):
            async with raw_ws(server, "CS1", "ocpp2.0.1") as ws:
                await exchange(ws, json.dumps([2, "b", "BootNotification", {
                    "chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"}]))
                pending = asyncio.ensure_future(api(http, "POST", "/api/chargers/CS1/faults", {
                    "kind": "malformed", "malformation": "invalid_json"}, expect=200))
                frame = await ws.recv()
                with pytest.raises(ValueError):
                    json.loads(frame)
                await ws.send(json.dumps([4, "-1", "RpcFrameworkError", "bad JSON", {}]))
                _, _, body = await pending
                assert body["answer"]["errorCode"] == "RpcFrameworkError"
    run(main())


def test_random_faults_are_seeded_and_apply_to_every_charger():
    async def main():
        async with csms_http() as (server, http):
            await api(http, "PUT", "/api/faults/random", {
                "seed": 7, "probabilities": {"call_error": 1.0}, "codes": ["OccurrenceConstraintViolation"]},
                expect=200)
            async with charge_point(server, "CP1") as cp:
                pass  # its BootNotification got the error (suppressed by the peer)
            assert json.loads(cp.recorder.received[-1])[2] == "OccurenceConstraintViolation"
            await api(http, "DELETE", "/api/faults/random", expect=200)
            async with charge_point(server, "CP1") as cp:
                assert json.loads(cp.recorder.received[-1])[0] == 3
            status, _, body = await api(http, "PUT", "/api/faults/random",
                                        {"seed": 1, "probabilities": {"call_error": 0.7, "delay": 0.7}})
            assert status == 400 and body["field_errors"] == {
                "probabilities": ["Probabilities must add up to 1 or less."]}
    run(main())


def test_fault_route_validation_and_offline_charger():
    async def main():
        async with csms_http() as (server, http):
            status, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "meteor"})
            assert status == 400 and list(body["field_errors"]) == ["kind"]
            status, _, body = await api(http, "POST", "/api/chargers/CP1/faults",
                                        {"kind": "delay", "seconds": -1, "colour": "red"})
            assert status == 400 and body["field_errors"] == {
                "seconds": ["Must be between 0 and 3600."], "colour": ["Unknown field."]}
            status, _, body = await api(http, "POST", "/api/chargers/CP1/faults",
                                        {"kind": "malformed", "malformation": "invalid_json"})
            assert status == 424 and body["error"]["type"] == "charging_provider_error"
            status, _, body = await api(http, "POST", "/api/chargers/CP1/faults", {"kind": "drop"})
            assert status == 424
    run(main())
