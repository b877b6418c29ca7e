"""The HTTP API of the bench CSMS (JSON under /api).

ROUTES is the one table of routes: method, path, handler, rate-limit class,
role needed ("admin", "user", or None for public) and a summary. The
middleware adds X-Request-ID to every response, checks the API token,
applies the rate limit of the route's class and turns every error into
problem+json (problems.py).
"""
import asyncio
import json
import time
import uuid

from aiohttp import web

from firmware.ocpp import errors as E
from host_tools.csms import faults as F
from host_tools.csms import logs, problems
from host_tools.csms import validate as V
from host_tools.csms.common import STATUSES_201
from host_tools.csms.problems import ApiError
from host_tools.csms.session import ChargerOffline, ChargerTimeout

log = logs.get_logger("api")

MAX_ID_LENGTH = 200  # X-Request-ID / X-Correlation-ID kept when printable and this short

# -- helpers -------------------------------------------------------------


CSMS = web.AppKey("csms", object)
CLIENT = web.RequestKey("client", tuple)  # (client name, role)


def _server(request):
    return request.app[CSMS]


async def _json_body(request):
    """The parsed body ({} when empty); 400 invalid-json when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError("invalid-json", "Request body is not valid JSON: %s" % exc)


def _checked(parse, *args):
    try:
        return parse(*args)
    except V.Invalid as exc:
        raise ApiError("validation-failed", str(exc), field_errors=exc.field_errors)


async def _body(request, spec):
    return _checked(V.check, await _json_body(request), spec)


def _json(data, status=200, headers=None):
    return web.json_response(data, status=status, headers=headers)


def _admin(request):
    if request[CLIENT][1] != "admin":
        raise ApiError(403, "This route needs an admin token.")


def _charger_row(request, charger_id):
    row = _server(request).storage.get_charger(charger_id)
    if row is None:
        raise ApiError(404, "Charger with this id was not found")
    return row


def _provider_error(detail, details, answer=None):
    extra = {"charger_answer": answer.to_json()} if answer is not None else {}
    return ApiError("charging-provider-error", detail, details=details, extra=extra)


async def _command(server, charger_id, action, payload, timeout=None, detail="Charging provider error",
                   what=None, validate=True, callerror_ok=False):
    """Send a CALL and return the Answer; 424 when the charger is offline,
    does not answer in time, or (unless callerror_ok) answers with a CALLERROR."""
    what = what or "Charger %s" % charger_id
    session = server.sessions.get(charger_id)
    if session is None:
        raise _provider_error(detail, "%s: charger %s is offline" % (what, charger_id))
    try:
        answer = await session.call(action, payload, timeout, validate)
    except ChargerOffline:
        raise _provider_error(detail, "%s: charger %s went offline" % (what, charger_id))
    except ChargerTimeout:
        raise _provider_error(detail, "%s: charger %s did not answer %s in time" % (what, charger_id, action))
    except ValueError as exc:
        raise ApiError("validation-failed", "The OCPP payload is invalid: %s" % exc.args[1],
                       field_errors={exc.args[0]: [exc.args[1]]})
    if answer.kind == "error" and not callerror_ok:
        raise _provider_error(detail, "%s: charger %s answered %s with CALLERROR %s %s" % (
            what, charger_id, action, answer.error_code, answer.error_description), answer)
    return answer


def _require_accepted(server, charger_id, detail, what):
    session = server.sessions.get(charger_id)
    if session is not None and session.boot_status not in (None, "Accepted"):
        # 1.6 §4.2.1 / 2.0.1 B02: no remote start or stop before Accepted.
        raise _provider_error(detail, "%s: charger %s is not accepted (boot status %s)" % (
            what, charger_id, session.boot_status))


def charger_json(server, row):
    v16 = row["ocpp_version"] == E.V16
    connectors = []
    for c in server.storage.list_connectors(row["id"]):
        item = {"connectorId": c["connector_id"], "status": c["status"], "timestamp": c["timestamp"],
                "updatedAt": c["updated_at"]}
        if v16:
            item.update(errorCode=c["error_code"], info=c["info"], vendorId=c["vendor_id"],
                        vendorErrorCode=c["vendor_error_code"])
        else:
            item["evseId"] = c["evse_id"]
        connectors.append(item)
    session = server.sessions.get(row["id"])
    return {
        "id": row["id"], "ocppVersion": row["ocpp_version"], "connected": session is not None,
        "bootStatus": row["boot_status"], "bootPolicy": row["boot_policy"],
        "heartbeatInterval": row["heartbeat_interval"], "retryInterval": row["retry_interval"],
        "vendor": row["vendor"], "model": row["model"], "serialNumber": row["serial_number"],
        "firmwareVersion": row["firmware_version"], "firstSeen": row["first_seen"], "lastSeen": row["last_seen"],
        "lastBoot": row["last_boot"], "bootCount": row["boot_count"], "bootViolations": row["boot_violations"],
        "authorizeUnknown": bool(row["authorize_unknown"]), "hasPassword": row["password"] is not None,
        "connectors": connectors,
        "activeSessions": [t["id"] for t in server.storage.active_transactions(row["id"])],
    }


def session_json(server, tx, meter_values=False):
    energy = None
    if tx["meter_start"] is not None and tx["meter_stop"] is not None:
        energy = tx["meter_stop"] - tx["meter_start"]
    out = {
        "id": tx["id"], "chargerId": tx["charger_id"], "ocppVersion": tx["ocpp_version"],
        "transactionId": tx["id"] if tx["ocpp_version"] == E.V16 and not tx["orphan"] else tx["tx_key"],
        "evseId": tx["evse_id"], "connectorId": tx["connector_id"], "idTag": tx["id_tag"],
        "idTagStatus": tx["id_tag_status"], "status": tx["status"], "meterStart": tx["meter_start"],
        "meterStop": tx["meter_stop"], "energyWh": energy, "startedAt": tx["start_time"],
        "stoppedAt": tx["stop_time"], "stopReason": tx["stop_reason"], "owner": tx["owner"],
        "remoteStartId": tx["remote_start_id"], "orphan": bool(tx["orphan"]),
        "startDuplicates": tx["start_duplicates"], "stopDuplicates": tx["stop_duplicates"],
        "stopRequestedAt": tx["stop_requested_at"],
    }
    if meter_values:
        out["meterValues"] = [
            {k: v for k, v in r.items() if v is not None} for r in server.storage.meter_values(tx["id"])]
    return out


def _visible_session(request, session_id):
    """The session, or 404 when unknown or started by another API user."""
    try:
        tx_id = int(session_id)
    except ValueError:
        tx_id = None
    tx = _server(request).storage.get_transaction(tx_id) if tx_id is not None else None
    name, role = request[CLIENT]
    if tx is None or (role != "admin" and tx["owner"] != name):
        raise ApiError(404, "User session with this id was not found")
    return tx


# -- routes: chargers ----------------------------------------------------------


async def health(request):
    server = _server(request)
    return _json({"status": "ok", "connected": len(server.sessions)})


async def list_chargers(request):
    server = _server(request)
    return _json({"chargers": [charger_json(server, r) for r in server.storage.list_chargers()]})


async def get_charger(request):
    server = _server(request)
    return _json(charger_json(server, _charger_row(request, request.match_info["charger_id"])))


BOOT_SPEC = {
    "status": V.field("str", required=True, choices=("Accepted", "Pending", "Rejected")),
    "heartbeatInterval": V.field("int", check=V.non_negative),
    "retryInterval": V.field("int", check=V.non_negative),
}


async def set_boot_policy(request):
    _admin(request)
    server = _server(request)
    body = await _body(request, BOOT_SPEC)
    cp = request.match_info["charger_id"]
    server.storage.ensure_charger(cp, server.charger_defaults)
    changes = {"boot_policy": body["status"]}
    if body["heartbeatInterval"] is not None:
        changes["heartbeat_interval"] = body["heartbeatInterval"]
    if body["retryInterval"] is not None:
        changes["retry_interval"] = body["retryInterval"]
    server.storage.update_charger(cp, **changes)
    return _json(charger_json(server, server.storage.get_charger(cp)))


def _id_tags_check(tags):
    for i, t in enumerate(tags):
        try:
            V.check(t, ID_TAG_SPEC)
        except V.Invalid as exc:
            return "Entry %d: %s" % (i, "; ".join("%s: %s" % (k, " ".join(v))
                                                  for k, v in sorted(exc.field_errors.items())))
    return None


ID_TAG_SPEC = {
    "idTag": V.field("str", required=True, check=lambda v: None if 0 < len(v) <= 36 else "1 to 36 characters."),
    "status": V.field("str", default="Accepted", choices=STATUSES_201),
    "parentIdTag": V.field("str"),
    "expiryDate": V.field("str"),
}
ID_TAGS_SPEC = {
    "idTags": V.field("list", required=True, check=_id_tags_check),
    "authorizeUnknown": V.field("bool"),
    "replace": V.field("bool", default=True),
}


def _id_tags_json(server, cp):
    return {"chargerId": cp, "idTags": [
        {k: v for k, v in (("idTag", r["id_tag"]), ("status", r["status"]), ("parentIdTag", r["parent_id_tag"]),
                           ("expiryDate", r["expiry_date"])) if v is not None}
        for r in server.storage.list_id_tags(cp)]}


async def get_id_tags(request):
    _admin(request)
    return _json(_id_tags_json(_server(request), request.match_info["charger_id"]))


async def set_id_tags(request):
    _admin(request)
    server = _server(request)
    body = await _body(request, ID_TAGS_SPEC)
    cp = request.match_info["charger_id"]
    if cp != "*":
        server.storage.ensure_charger(cp, server.charger_defaults)
        if body["authorizeUnknown"] is not None:
            server.storage.update_charger(cp, authorize_unknown=1 if body["authorizeUnknown"] else 0)
    elif body["authorizeUnknown"] is not None:
        raise ApiError("validation-failed", "authorizeUnknown is set per charger",
                       field_errors={"authorizeUnknown": ["Not available for '*'."]})
    rows = [{"id_tag": t["idTag"], "status": t.get("status", "Accepted"), "parent_id_tag": t.get("parentIdTag"),
             "expiry_date": t.get("expiryDate")} for t in body["idTags"]]
    server.storage.set_id_tags(cp, rows, replace=body["replace"])
    return _json(_id_tags_json(server, cp))


async def set_password(request):
    _admin(request)
    server = _server(request)
    body = await _body(request, {"password": V.field("str")})
    cp = request.match_info["charger_id"]
    server.storage.ensure_charger(cp, server.charger_defaults)
    server.storage.update_charger(cp, password=body["password"])
    return _json({"chargerId": cp, "hasPassword": body["password"] is not None})


CALL_SPEC = {
    "action": V.field("str", required=True),
    "payload": V.field("dict", default={}),
    "timeout": V.field("number", check=V.bounded(0.001, 300)),
    "validate": V.field("bool", default=True),
}


async def raw_call(request):
    """Send any CALL; 200 with the answer, CALLRESULT or CALLERROR alike."""
    _admin(request)
    server = _server(request)
    body = await _body(request, CALL_SPEC)
    cp = request.match_info["charger_id"]
    _charger_row(request, cp)
    answer = await _command(server, cp, body["action"], body["payload"], body["timeout"],
                            validate=body["validate"], callerror_ok=True)
    return _json(answer.to_json())


AVAILABILITY_SPEC = {
    "type": V.field("str", required=True, choices=("Operative", "Inoperative")),
    "connectorId": V.field("int", check=V.non_negative),
    "evseId": V.field("int", check=V.non_negative),
}


async def change_availability(request):
    _admin(request)
    server = _server(request)
    body = await _body(request, AVAILABILITY_SPEC)
    cp = request.match_info["charger_id"]
    row = _charger_row(request, cp)
    if row["ocpp_version"] == E.V16:
        action, payload = "ChangeAvailability", {"connectorId": body["connectorId"] or 0, "type": body["type"]}
    else:
        payload = {"operationalStatus": body["type"]}
        if body["evseId"]:
            payload["evse"] = {"id": body["evseId"]}
            if body["connectorId"]:
                payload["evse"]["connectorId"] = body["connectorId"]
        action = "ChangeAvailability"
    answer = await _command(server, cp, action, payload)
    if answer.payload.get("status") not in ("Accepted", "Scheduled"):
        raise _provider_error("Charging provider error", "Charger %s answered ChangeAvailability with %s" % (
            cp, answer.payload.get("status")), answer)
    return _json({"status": answer.payload["status"], "answer": answer.to_json()})


def _component_variable(key):
    """'Component/Variable[/Instance]' -> 2.0.1 component and variable objects."""
    parts = key.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        return None
    variable = {"name": parts[1]}
    if len(parts) == 3:
        variable["instance"] = parts[2]
    return {"component": {"name": parts[0]}, "variable": variable}


def _variable_key(item):
    key = item["component"]["name"] + "/" + item["variable"]["name"]
    if item["variable"].get("instance"):
        key += "/" + item["variable"]["instance"]
    return key


async def get_configuration(request):
    _admin(request)
    server = _server(request)
    cp = request.match_info["charger_id"]
    row = _charger_row(request, cp)
    keys = request.query.getall("key", [])
    if row["ocpp_version"] == E.V16:
        answer = await _command(server, cp, "GetConfiguration", {"key": keys} if keys else {})
        entries = [{"key": k["key"], "value": k.get("value"), "readonly": k["readonly"]}
                   for k in answer.payload.get("configurationKey", [])]
        return _json({"configuration": entries, "unknownKeys": answer.payload.get("unknownKey", []),
                      "answer": answer.to_json()})
    items = [_component_variable(k) for k in keys]
    if not keys or None in items:
        raise ApiError("validation-failed", "OCPP 2.0.1 needs keys as Component/Variable[/Instance]",
                       field_errors={"key": ["Give one or more key=Component/Variable[/Instance]."]})
    answer = await _command(server, cp, "GetVariables", {"getVariableData": items})
    entries, unknown = [], []
    for r in answer.payload.get("getVariableResult", []):
        key = _variable_key(r)
        entries.append({"key": key, "value": r.get("attributeValue"), "status": r["attributeStatus"]})
        if r["attributeStatus"] in ("UnknownComponent", "UnknownVariable"):
            unknown.append(key)
    return _json({"configuration": entries, "unknownKeys": unknown, "answer": answer.to_json()})


def _settings_check(settings):
    for i, s in enumerate(settings):
        if not isinstance(s, dict) or not isinstance(s.get("key"), str) or not isinstance(s.get("value"), str) \
                or set(s) - {"key", "value"}:
            return "Entry %d must be {\"key\": string, \"value\": string}." % i
    return None if settings else "Must not be empty."


SET_CONFIG_SPEC = {
    "key": V.field("str"),
    "value": V.field("str"),
    "settings": V.field("list", check=_settings_check),
}


async def set_configuration(request):
    _admin(request)
    server = _server(request)
    body = await _body(request, SET_CONFIG_SPEC)
    settings = body["settings"] or []
    if body["key"] is not None:
        if body["value"] is None:
            raise ApiError("validation-failed", "value is required with key", field_errors={"value": [V.REQUIRED]})
        settings = settings + [{"key": body["key"], "value": body["value"]}]
    if not settings:
        raise ApiError("validation-failed", "Give key and value, or settings",
                       field_errors={"key": [V.REQUIRED], "settings": [V.REQUIRED]})
    cp = request.match_info["charger_id"]
    row = _charger_row(request, cp)
    results, answers = [], []
    if row["ocpp_version"] == E.V16:
        for s in settings:
            answer = await _command(server, cp, "ChangeConfiguration", {"key": s["key"], "value": s["value"]})
            results.append({"key": s["key"], "status": answer.payload.get("status")})
            answers.append(answer.to_json())
    else:
        items = []
        for s in settings:
            item = _component_variable(s["key"])
            if item is None:
                raise ApiError("validation-failed", "OCPP 2.0.1 needs keys as Component/Variable[/Instance]",
                               field_errors={"key": ["Use Component/Variable[/Instance]."]})
            item["attributeValue"] = s["value"]
            items.append(item)
        answer = await _command(server, cp, "SetVariables", {"setVariableData": items})
        for r in answer.payload.get("setVariableResult", []):
            results.append({"key": _variable_key(r), "status": r["attributeStatus"]})
        answers.append(answer.to_json())
    return _json({"results": results, "answers": answers})


# -- routes: fault injection ----------------------------------------------------


async def get_faults(request):
    _admin(request)
    return _json(_server(request).faults.of(request.match_info["charger_id"]).snapshot())


async def add_fault(request):
    """Queue a fault, set random mode, or act now (malformed, drop, refuse_reconnect)."""
    _admin(request)
    server = _server(request)
    spec = _checked(F.parse, await _json_body(request))
    cp = request.match_info["charger_id"]
    faults = server.faults.of(cp)
    kind = spec["kind"]
    if kind == "malformed":
        session = _online(server, cp)
        text, msg_id, answer = await session.send_malformed(
            spec["malformation"], spec["action"], spec["payload"], spec["fields"], spec["message_type"],
            spec["raw"], spec["timeout"])
        faults.count("malformed", spec)
        return _json({"frame": text, "messageId": msg_id, "answer": answer.to_json() if answer else None})
    if kind == "drop" and spec["action"] is None:
        session = _online(server, cp)
        faults.count("drop", spec)
        await session.drop(spec["close_code"], spec["refuse_seconds"], spec["refuse_status"])
        return _json({"dropped": True, "faults": faults.snapshot()})
    faults.add(spec)
    return _json(faults.snapshot(), status=201)


def _online(server, cp):
    session = server.sessions.get(cp)
    if session is None:
        raise _provider_error("Charging provider error", "Charger %s is offline" % cp)
    return session


async def clear_faults(request):
    _admin(request)
    faults = _server(request).faults.of(request.match_info["charger_id"])
    faults.clear()
    return _json(faults.snapshot())


async def get_random_faults(request):
    _admin(request)
    return _json({"random": _server(request).faults.default_random})


async def set_random_faults(request):
    _admin(request)
    body = await _json_body(request)
    spec = _checked(F.parse, dict(body, kind="random") if isinstance(body, dict) else body)
    _server(request).faults.set_default_random(spec)
    return _json({"random": spec})


async def clear_random_faults(request):
    _admin(request)
    _server(request).faults.set_default_random(None)
    return _json({"random": None})


# -- routes: sessions -----------------------------------------------------------


async def list_sessions(request):
    server = _server(request)
    name, role = request[CLIENT]
    status = request.query.get("status")
    if status not in (None, "active", "stopped"):
        raise ApiError("validation-failed", "status must be active or stopped",
                       field_errors={"status": ["Must be one of: active, stopped."]})
    rows = server.storage.list_transactions(charger_id=request.query.get("charger"), status=status,
                                            owner=None if role == "admin" else name,
                                            after_id=_int_query(request, "since", 0),
                                            limit=_int_query(request, "limit", 1000, 1))
    return _json({"sessions": [session_json(server, t) for t in rows]})


async def get_session(request):
    return _json(session_json(_server(request), _visible_session(request, request.match_info["session_id"]),
                              meter_values=True))


START_SPEC = {
    "chargerId": V.field("str", required=True),
    "idTag": V.field("str", required=True, check=lambda v: None if 0 < len(v) <= 36 else "1 to 36 characters."),
    "connectorId": V.field("int", check=V.positive),
    "evseId": V.field("int", check=V.positive),
    "idTokenType": V.field("str", default="ISO14443"),
    "chargingProfile": V.field("dict"),
    "wait": V.field("number", default=0, check=V.bounded(0, 300)),
}


async def start_session(request):
    """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1)."""
    server = _server(request)
    body = await _body(request, START_SPEC)
    cp = body["chargerId"]
    row = _charger_row(request, cp)
    detail = "Charging Error"
    what = "Charging provider didn't manage to start charging"
    _require_accepted(server, cp, detail, what)
    remote_start_id = None
    if row["ocpp_version"] == E.V16:
        action = "RemoteStartTransaction"
        payload = {"idTag": body["idTag"]}
        if body["connectorId"]:
            payload["connectorId"] = body["connectorId"]
    else:
        action = "RequestStartTransaction"
        remote_start_id = server.next_remote_start_id()
        payload = {"idToken": {"idToken": body["idTag"], "type": body["idTokenType"]}, "remoteStartId": remote_start_id}
        if body["evseId"]:
            payload["evseId"] = body["evseId"]
    if body["chargingProfile"] is not None:
        payload["chargingProfile"] = body["chargingProfile"]
    expected = server.expect_remote_start(cp, body["idTag"], body["connectorId"] if row["ocpp_version"] == E.V16
                                          else None, body["evseId"], request[CLIENT][0], remote_start_id)
    try:
        answer = await _command(server, cp, action, payload, detail=detail, what=what)
        if answer.payload.get("status") != "Accepted":
            raise _provider_error(detail, "%s: charger %s answered %s" % (what, cp, answer.payload.get("status")),
                                  answer)
    except BaseException:
        server.forget_remote_start(expected)
        raise
    out = {"status": "Accepted", "chargerId": cp, "remoteStartId": remote_start_id, "session": None,
           "answer": answer.to_json()}
    wait = min(body["wait"], server.max_wait)
    if wait > 0:
        try:
            tx_id = await asyncio.wait_for(asyncio.shield(expected["future"]), wait)
        except asyncio.TimeoutError:
            tx_id = None
        if tx_id is not None:
            out["session"] = session_json(server, server.storage.get_transaction(tx_id))
            return _json(out, status=201, headers={"Location": "/api/sessions/%d" % tx_id})
    return _json(out, status=202)


STOP_SPEC = {"wait": V.field("number", default=0, check=V.bounded(0, 300))}


async def stop_session(request):
    """Stop a session: 404 unknown or foreign, 409 already_stopped, 424
    charging_provider_error (Rejected, CALLERROR, offline, no answer in time),
    500 unexpected_error with a support code; 202 when the charger accepted,
    200 when `wait` saw the transaction end."""
    server = _server(request)
    tx = _visible_session(request, request.match_info["session_id"])
    body = await _body(request, STOP_SPEC)
    if tx["status"] == "stopped":
        raise ApiError("already-stopped", "User session is already stopped")
    cp = tx["charger_id"]
    detail = "Charging Error"
    what = "Charging provider didn't manage to stop charging"
    _require_accepted(server, cp, detail, what)
    if tx["ocpp_version"] == E.V16:
        action, payload = "RemoteStopTransaction", {"transactionId": tx["id"]}
    else:
        action, payload = "RequestStopTransaction", {"transactionId": tx["tx_key"]}
    answer = await _command(server, cp, action, payload, detail=detail, what=what)
    if answer.payload.get("status") != "Accepted":
        raise _provider_error(detail, "%s: charger %s answered %s" % (what, cp, answer.payload.get("status")),
                              answer)
    server.storage.update_transaction(tx["id"], stop_requested_at=logs.utc_now_iso())
    server.storage.commit()
    wait = min(body["wait"], server.max_wait)
    stopped = wait > 0 and await server.wait_stopped(tx["id"], wait)
    out = {"status": "Accepted", "session": session_json(server, server.storage.get_transaction(tx["id"])),
           "answer": answer.to_json()}
    return _json(out, status=200 if stopped else 202)


# -- routes: logs ---------------------------------------------------------------


def _int_query(request, name, default, low=0, high=1000000):
    value = request.query.get(name)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        raise ApiError("validation-failed", "%s must be an integer from %d to %d" % (name, low, high),
                       field_errors={name: ["Must be an integer from %d to %d." % (low, high)]})
    return n


async def messages(request):
    _admin(request)
    q = request.query
    records = _server(request).message_log.query(q.get("charger"), q.get("correlation_id"), q.get("action"),
                                                 _int_query(request, "limit", 1000, 1))
    return _json({"messages": records})


async def ledger(request):
    _admin(request)
    server = _server(request)
    rows = server.storage.ledger(request.query.get("charger"), _int_query(request, "since", 0),
                                 _int_query(request, "limit", 10000, 1))
    return _json({"ledger": rows})


async def ledger_counts(request):
    _admin(request)
    return _json({"counts": _server(request).storage.ledger_counts(request.query.get("charger"))})


async def problem_type(request):
    doc = problems.describe(request.match_info["slug"])
    if doc is None:
        raise ApiError(404, "No such problem type")
    return _json(doc)


async def openapi(request):
    from host_tools.csms.openapi import document

    return _json(document(ROUTES, _server(request).base_url))


# -- the table ------------------------------------------------------------------

# (method, path, handler, rate class, role, summary)
ROUTES = (
    ("GET", "/api/health", health, "read", None, "Liveness and number of connected chargers"),
    ("GET", "/api/openapi.json", openapi, "read", None, "This API as OpenAPI 3.1"),
    ("GET", "/api/problems/{slug}", problem_type, "read", None, "Description of a problem type"),
    ("GET", "/api/chargers", list_chargers, "read", "user", "Chargers with connector status"),
    ("GET", "/api/chargers/{charger_id}", get_charger, "read", "user", "One charger"),
    ("PUT", "/api/chargers/{charger_id}/boot-policy", set_boot_policy, "write", "admin",
     "Answer to its next BootNotification: Accepted, Pending or Rejected, with intervals"),
    ("GET", "/api/chargers/{charger_id}/id-tags", get_id_tags, "read", "admin", "Id tags (use * for every charger)"),
    ("PUT", "/api/chargers/{charger_id}/id-tags", set_id_tags, "write", "admin",
     "Set id tags with status, parentIdTag, expiryDate (use * for every charger)"),
    ("PUT", "/api/chargers/{charger_id}/password", set_password, "write", "admin",
     "HTTP Basic password the charger must present (null: none)"),
    ("POST", "/api/chargers/{charger_id}/call", raw_call, "command", "admin",
     "Send any OCPP CALL and return the CALLRESULT or CALLERROR"),
    ("POST", "/api/chargers/{charger_id}/availability", change_availability, "command", "admin",
     "ChangeAvailability"),
    ("GET", "/api/chargers/{charger_id}/configuration", get_configuration, "command", "admin",
     "GetConfiguration (1.6) / GetVariables (2.0.1); key may repeat"),
    ("PUT", "/api/chargers/{charger_id}/configuration", set_configuration, "command", "admin",
     "ChangeConfiguration (1.6) / SetVariables (2.0.1)"),
    ("GET", "/api/chargers/{charger_id}/faults", get_faults, "read", "admin", "Fault injection state"),
    ("POST", "/api/chargers/{charger_id}/faults", add_fault, "command", "admin",
     "Queue a fault, set random mode, or act now (malformed, drop, refuse_reconnect)"),
    ("DELETE", "/api/chargers/{charger_id}/faults", clear_faults, "write", "admin", "Clear faults"),
    ("GET", "/api/faults/random", get_random_faults, "read", "admin", "Random faults for every charger"),
    ("PUT", "/api/faults/random", set_random_faults, "write", "admin", "Set random faults for every charger"),
    ("DELETE", "/api/faults/random", clear_random_faults, "write", "admin", "Clear random faults"),
    ("GET", "/api/sessions", list_sessions, "read", "user", "Sessions; filter by charger and status"),
    ("POST", "/api/sessions", start_session, "command", "user",
     "Start a session remotely (RemoteStartTransaction / RequestStartTransaction)"),
    ("GET", "/api/sessions/{session_id}", get_session, "read", "user", "One session with its meter values"),
    ("POST", "/api/sessions/{session_id}/stop", stop_session, "command", "user",
     "Stop a session (RemoteStopTransaction / RequestStopTransaction)"),
    ("GET", "/api/messages", messages, "read", "admin", "OCPP message log; filter by charger, correlation_id, action"),
    ("GET", "/api/ledger", ledger, "read", "admin", "Ledger of transaction messages received"),
    ("GET", "/api/ledger/counts", ledger_counts, "read", "admin", "Ledger outcomes counted"),
)
_META = {r[2]: r for r in ROUTES}
_CHARGING_ROUTES = (start_session, stop_session)  # their 500s say "Charging Error" (stop-charging seed)


def _clean_id(value):
    if value and len(value) <= MAX_ID_LENGTH and value.isprintable():
        return value
    return None


def _authenticate(server, request):
    """(client name, role); 401 when tokens are configured and none valid is given."""
    if not server.api_tokens:
        return request.remote or "local", "admin"
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError(401, "An API token is required (Authorization: Bearer <token>).",
                       headers={"WWW-Authenticate": 'Bearer realm="csms"'})
    found = server.api_tokens.get(header[7:].strip())
    if found is None:
        raise ApiError(401, "The API token is not valid.",
                       headers={"WWW-Authenticate": 'Bearer realm="csms", error="invalid_token"'})
    return found


@web.middleware
async def middleware(request, handler):
    server = request.app[CSMS]
    rid = _clean_id(request.headers.get("X-Request-ID")) or str(uuid.uuid4())
    given_corr = _clean_id(request.headers.get("X-Correlation-ID"))
    rid_token = logs.request_id.set(rid)
    corr_token = logs.correlation_id.set(given_corr or rid)
    started = time.monotonic()
    status = 500
    client = None
    try:
        try:
            if request.path.startswith("/api"):
                meta = _META.get(getattr(request.match_info, "handler", None))
                if meta is not None and meta[4] is None:
                    client = (request.remote or "local", "public")
                else:
                    client = _authenticate(server, request)
                request[CLIENT] = client
                if meta is not None:
                    if meta[4] == "admin" and client[1] != "admin":
                        raise ApiError(403, "This route needs an admin token.")
                    allowed, retry_after, remaining = server.rate_limiter.check(client[0], meta[3])
                    if not allowed:
                        raise ApiError("rate-limited", "Rate limit of %d requests per %g s for %s routes exceeded" % (
                            server.rate_limiter.limits[meta[3]] + (meta[3],)),
                            details="Retry after %d seconds" % retry_after,
                            headers={"Retry-After": str(retry_after)})
            response = await handler(request)
        except ApiError as err:
            response = problems.problem_response(err, request, rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {}
            if exc.status == 405:
                headers["Allow"] = exc.headers.get("Allow", "")
            detail = {404: "Resource does not exist or cannot be accessed.",
                      405: "The route does not support %s; allowed: %s." % (request.method, headers.get("Allow")),
                      }.get(exc.status, exc.reason)
            response = problems.problem_response(ApiError(exc.status, detail, headers=headers), request, rid)
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception:
            code = str(uuid.uuid4())
            log.exception("unexpected error, support code %s, on %s %s", code, request.method, request.path)
            charging = getattr(request.match_info, "handler", None) in _CHARGING_ROUTES
            err = ApiError(500, "Charging Error" if charging else "Unexpected error",
                           details="We faced unexpected error. In case it wasn't resolved let us know. Code: " + code,
                           extra={"support_code": code})
            response = problems.problem_response(err, request, rid)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
            if given_corr:
                response.headers["X-Correlation-ID"] = given_corr
        return response
    finally:
        log.info("%s %s %d %.1f ms client=%s", request.method, request.path_qs, status,
                 (time.monotonic() - started) * 1000.0, client[0] if client else "-")
        logs.correlation_id.reset(corr_token)
        logs.request_id.reset(rid_token)


def build_app(server):
    app = web.Application(middlewares=[middleware], client_max_size=1024 * 1024)
    app[CSMS] = server
    for method, path, handler, _, _, _ in ROUTES:
        app.router.add_route(method, path, handler)
    return app
