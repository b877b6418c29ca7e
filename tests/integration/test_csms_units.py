"""Pure parts of the bench CSMS (CPython only): rate limiter on a fake clock,
redaction, malformed frames, random faults, problem bodies, the CLI's
Retry-After and problem printing, meter value arithmetic, storage."""
import email.utils
import io
import json

import pytest

from host_tools.csms import cli, common, faults, msglog, problems, storage
from host_tools.csms import validate as V
from host_tools.csms.ratelimit import RateLimiter, parse_limit
from tests.support import FakeClock


def test_token_bucket_bursts_to_the_limit_then_says_when_to_retry():
    clock = FakeClock(0)
    limiter = RateLimiter({"read": (3, 60.0)}, clock=lambda: clock() / 1000.0)
    assert [limiter.check("a", "read")[0] for _ in range(3)] == [True, True, True]
    assert limiter.check("a", "read") == (False, 20, 0)  # one token per 20 s
    assert limiter.check("b", "read")[0] is True  # per client
    assert limiter.check("a", "write") == (True, 0, None)  # unlimited class
    clock.advance(19000)
    assert limiter.check("a", "read") == (False, 1, 0)
    clock.advance(1000)
    assert limiter.check("a", "read") == (True, 0, 0)
    clock.advance(600000)
    assert limiter.check("a", "read") == (True, 0, 2)  # refilled to the limit, not beyond


def test_parse_limit():
    assert parse_limit("read=100/60") == ("read", (100, 60.0))
    assert parse_limit("command=5") == ("command", (5, 60.0))
    for bad in ("read", "read=0/1", "=5", "read=x"):
        with pytest.raises(ValueError):
            parse_limit(bad)


def test_redact_secrets_in_any_version():
    payload = {"key": "AuthorizationKey", "value": "00ff"}
    assert msglog.redact(payload) == {"key": "AuthorizationKey", "value": "***"}
    assert payload["value"] == "00ff"  # a copy
    assert msglog.redact({"configurationKey": [{"key": "authorizationkey", "value": "x", "readonly": False},
                                               {"key": "HeartbeatInterval", "value": "60"}]}) == \
        {"configurationKey": [{"key": "authorizationkey", "value": "***", "readonly": False},
                              {"key": "HeartbeatInterval", "value": "60"}]}
    assert msglog.redact({"setVariableData": [{"attributeValue": "pw", "component": {"name": "SecurityCtrlr"},
                                               "variable": {"name": "BasicAuthPassword"}}]}) == \
        {"setVariableData": [{"attributeValue": "***", "component": {"name": "SecurityCtrlr"},
                              "variable": {"name": "BasicAuthPassword"}}]}
    assert msglog.redact({"csr": "-----", "certificateChain": "x", "idTag": "T"}) == \
        {"csr": "***", "certificateChain": "***", "idTag": "T"}


def test_malformed_frames_are_exact():
    p = {"connectorId": 0, "type": "Operative", "flag": True, "obj": {"a": 1}, "none": None}
    assert faults.malformed_frame("invalid_json", "i", "A", {"x": 1}) == '[2,"i","A",{"x":1}'
    assert faults.malformed_frame("wrong_types", "i", "A", p) == \
        '[2,"i","A",{"connectorId":"0","type":1,"flag":"true","obj":"{\\"a\\":1}","none":0}]'
    assert faults.malformed_frame("wrong_types", "i", "A", p, fields=["type", "nope"]) == \
        '[2,"i","A",{"connectorId":0,"type":1,"flag":true,"obj":{"a":1},"none":null}]'
    assert faults.malformed_frame("missing_fields", "i", "A", {"x": 1, "y": 2}, fields=["y"]) == '[2,"i","A",{"x":1}]'
    assert faults.malformed_frame("unknown_action", "i", "Nope", {}) == '[2,"i","Nope",{}]'
    assert faults.malformed_frame("unknown_message_type", "i", "A", {}, message_type=9) == '[9,"i","A",{}]'
    assert faults.malformed_frame("raw", "i", "A", {}, raw="x") == "x"


def test_random_faults_repeat_for_the_same_seed_and_differ_per_charger():
    spec = faults.parse({"kind": "random", "seed": 42, "probabilities": {
        "call_error": 0.2, "delay": 0.2, "no_answer": 0.1, "drop": 0.05, "malformed": 0.05}})

    def draws(charger):
        registry = faults.FaultRegistry()
        registry.of(charger).add(spec)
        return [registry.of(charger).take("Heartbeat") for _ in range(200)]

    a, b, other = draws("CP1"), draws("CP1"), draws("CP2")
    assert a == b and a != other
    kinds = {d[0] for d in a if d is not None}
    assert kinds == {"call_error", "delay", "no_answer", "drop", "malformed"}
    assert 0.45 < sum(d is not None for d in a) / 200.0 < 0.75


def test_queued_rules_match_in_order_and_count_down():
    clock = FakeClock(0)
    f = faults.ChargerFaults("CP1", lambda: clock() / 1000.0)
    f.add(faults.parse({"kind": "no_answer", "action": "Heartbeat", "count": 2}))
    f.add(faults.parse({"kind": "delay", "seconds": 1}))
    assert f.take("Authorize")[0] == "delay"
    assert [f.take("Heartbeat")[0] for _ in range(2)] == ["no_answer", "no_answer"]
    assert f.take("Heartbeat") is None
    f.refuse(2.5, 503)
    assert f.refusing() == (503, 3)
    clock.advance(2500)
    assert f.refusing() is None


def test_fault_specs_are_checked():
    with pytest.raises(V.Invalid) as exc:
        faults.parse({"kind": "call_error"})
    assert exc.value.field_errors == {"code": [V.REQUIRED]}
    with pytest.raises(V.Invalid) as exc:
        faults.parse({"kind": "malformed", "malformation": "raw"})
    assert exc.value.field_errors == {"raw": ["Required when malformation is raw."]}
    # Both spellings are taken; the charger's version decides what is sent.
    for code in ("OccurenceConstraintViolation", "OccurrenceConstraintViolation", "FormationViolation",
                 "FormatViolation", "RpcFrameworkError", "MessageTypeNotSupported"):
        assert faults.parse({"kind": "call_error", "code": code})["code"] == code


def test_problem_body_keeps_both_error_formats():
    err = problems.ApiError("already-stopped", "User session is already stopped")
    body = problems.problem_body(err, "http://h", "/api/sessions/1/stop", "r1")
    assert body == {"type": "http://h/api/problems/already-stopped", "title": "Session already stopped",
                    "status": 409, "detail": "User session is already stopped", "instance": "/api/sessions/1/stop",
                    "request_id": "r1", "error": {"type": "already_stopped",
                                                  "details": "User session is already stopped"}}
    body = problems.problem_body(problems.ApiError(404, "nope"), "http://h", "/x", "r2")
    assert body == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "nope",
                    "instance": "/x", "request_id": "r2"}
    err = problems.ApiError("validation-failed", "Error on fields: a", field_errors={"a": ["bad"]})
    assert problems.problem_body(err, "", "/", "r")["field_errors"] == {"a": ["bad"]}


def test_cli_reads_retry_after_both_ways_and_prints_problems():
    assert cli.retry_after_seconds("7") == 7.0
    assert cli.retry_after_seconds(None) == 1.0
    date = email.utils.formatdate(1000.0 + 30, usegmt=True)
    assert cli.retry_after_seconds(date, now=1000.0) == 30.0
    text = cli.format_problem(424, {
        "type": "http://h/api/problems/charging-provider-error", "title": "Charging provider error", "status": 424,
        "detail": "Charging Error", "instance": "/api/sessions/3/stop", "request_id": "r-1",
        "error": {"type": "charging_provider_error", "details": "charger CP1 answered Rejected"},
        "field_errors": {"idTag": ["This field is required."]}})
    assert text.splitlines() == [
        "HTTP 424 Charging provider error: Charging Error",
        "  error type: charging_provider_error",
        "  details:    charger CP1 answered Rejected",
        "  field idTag: This field is required.",
        "  type:       http://h/api/problems/charging-provider-error",
        "  instance:   /api/sessions/3/stop",
        "  request id: r-1"]


def test_cli_honours_retry_after_then_succeeds(monkeypatch):
    answers = [(429, {"Retry-After": "2"}, b'{"status": 429}'), (200, {}, b'{"ok": true}')]
    slept = []

    class Resp:
        def __init__(self, status, headers, body):
            self.status, self.headers, self._body = status, headers, body

        def read(self):
            return self._body

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(req, timeout):
        status, headers, body = answers.pop(0)
        if status >= 400:
            import urllib.error
            raise urllib.error.HTTPError(req.full_url, status, "x", headers, io.BytesIO(body))
        return Resp(status, headers, body)

    monkeypatch.setattr(cli.urllib.request, "urlopen", fake_urlopen)
    out = io.StringIO()
    client = cli.Client("http://h", retries=1, out=out, sleep=slept.append)
    assert client.request("GET", "/api/chargers") == (200, {}, {"ok": True})
    assert slept == [2.0]
    assert out.getvalue() == "rate limited (429); retrying in 2 s (attempt 1 of 1)\n"


def test_energy_from_meter_values():
    rows = common.flatten_meter_values([
        {"timestamp": "t", "sampledValue": [
            {"value": "1.5", "unit": "kWh", "context": "Transaction.Begin"},
            {"value": "230", "measurand": "Voltage"},
            {"value": "99", "phase": "L1"}]},
        {"timestamp": "u", "sampledValue": [
            {"value": 2.0, "context": "Transaction.End", "unitOfMeasure": {"unit": "kWh", "multiplier": 1}}]}])
    assert common.energy_wh(rows, "Transaction.Begin") == 1500
    assert common.energy_wh(rows, "Transaction.End") == 20000
    assert common.energy_wh(rows) == 20000
    assert common.energy_wh([]) is None


def test_storage_id_tags_fall_back_to_every_charger(tmp_path):
    st = storage.open_storage(str(tmp_path / "csms.sqlite"))
    st.ensure_charger("CP1")
    st.set_id_tags("*", [{"id_tag": "A", "status": "Accepted"}])
    st.set_id_tags("CP1", [{"id_tag": "A", "status": "Blocked"}, {"id_tag": "B", "status": "Accepted",
                                                                   "expiry_date": "2000-01-01T00:00:00+02:00"}])
    charger = st.get_charger("CP1")
    assert common.authorize(st, charger, "A") == ("Blocked", None, None)
    assert common.authorize(st, dict(charger, id="CP2"), "A") == ("Accepted", None, None)
    assert common.authorize(st, charger, "B")[0] == "Expired"
    assert common.authorize(st, charger, "C") == ("Invalid", None, None)
    assert common.authorize(st, charger, "C", v16=False) == ("Unknown", None, None)
    st.set_id_tags("CP1", [{"id_tag": "N", "status": "NoCredit"}])
    assert common.authorize(st, charger, "N")[0] == "Invalid"  # no such status in 1.6
    assert common.authorize(st, charger, "N", v16=False)[0] == "NoCredit"
    st.close()
    # The file keeps what was committed.
    again = storage.open_storage(str(tmp_path / "csms.sqlite"))
    assert [r["id_tag"] for r in again.list_id_tags("CP1")] == ["N"]
    again.close()


def test_ledger_digest_ignores_key_order():
    assert storage.digest("A", {"a": 1, "b": [1, 2]}) == storage.digest("A", json.loads('{"b": [1, 2], "a": 1}'))
    assert storage.digest("A", {"a": 1}) != storage.digest("B", {"a": 1})
