# One structured record per OCPP frame (DESIGN.md "Message log"; seed 003
# "Message Logging"): UTC time with milliseconds, direction, message type,
# messageId, action, payload with secrets redacted, round-trip for answers.
from firmware.clock import iso8601
from firmware.compat import json_dumps

TYPE_NAMES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR", 5: "CALLRESULTERROR", 6: "SEND"}

REDACTED = "***"
# Fields whose value is a secret wherever they appear.
SECRET_FIELDS = (
    "authorizationKey",
    "AuthorizationKey",
    "basicAuthPassword",
    "BasicAuthPassword",
    "password",
    "apnPassword",
    "certificate",
    "certificateChain",
    "csr",
    "privateKey",
)
# Configuration keys / device-model variables whose value is a secret:
# 1.6 ChangeConfiguration {key, value} (J16 §6.2.2: the AuthorizationKey is
# write-only), 2.0.1 SetVariables {variable: {name}, attributeValue}.
SECRET_KEYS = ("AuthorizationKey", "BasicAuthPassword")


def redact(value):
    """A copy of value with every secret replaced; shares what holds none."""
    t = type(value)
    if t is dict:
        out = None
        for k in value:
            v = value[k]
            if k in SECRET_FIELDS and v is not None:
                nv = REDACTED
            elif k == "value" and value.get("key") in SECRET_KEYS:
                nv = REDACTED
            elif k == "attributeValue" and _variable_name(value) in SECRET_KEYS:
                nv = REDACTED
            else:
                nv = redact(v)
            if nv is not v:
                if out is None:
                    out = dict(value)
                out[k] = nv
        return value if out is None else out
    if t is list:
        out = None
        for i in range(len(value)):
            v = value[i]
            nv = redact(v)
            if nv is not v:
                if out is None:
                    out = list(value)
                out[i] = nv
        return value if out is None else out
    return value


def _raw(text):
    for name in SECRET_FIELDS + SECRET_KEYS:
        if name in text:
            return "<%d characters, withheld: may hold a secret>" % len(text)
    return text[:120]


def _variable_name(d):
    var = d.get("variable")
    return var.get("name") if type(var) is dict else None


def record(utc_ms, direction, mtype, msg_id, action, body, rtt_ms):
    """The log record of one frame as a dict (see rpc.Endpoint's log hook)."""
    rec = {
        "t": iso8601(utc_ms),
        "dir": direction,
        "type": TYPE_NAMES.get(mtype, mtype),
        "id": msg_id,
        "action": action,
    }
    if type(body) is tuple:  # (code, description, details) of an error
        rec["error"] = {"code": body[0], "description": body[1], "details": redact(body[2])}
    elif type(body) is str:  # unparseable text: never echo it whole
        rec["raw"] = _raw(body)
    else:
        rec["payload"] = redact(body)
    if rtt_ms is not None:
        rec["rtt_ms"] = rtt_ms
    return rec


def line(utc_ms, direction, mtype, msg_id, action, body, rtt_ms):
    return json_dumps(record(utc_ms, direction, mtype, msg_id, action, body, rtt_ms))
