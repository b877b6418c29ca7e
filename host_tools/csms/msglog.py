"""One structured record per OCPP frame, in a bounded ring and optionally a
JSON-lines file.

Record: {"ts": UTC ms ISO time, "charger", "dir": "in" (charger to CSMS) or
"out", "type": "CALL" | "CALLRESULT" | "CALLERROR" | "MALFORMED" | "DROP" |
"NO_ANSWER" (a CALL left unanswered by fault injection), "id",
"action", "payload" (secrets redacted), "rtt_ms" on answers (CALL sent or
received to answer sent or received), "correlation_id", and "fault" when the
frame was shaped by fault injection ("sent": false for an answer it kept
back); CALLERRORs add "error_code", "error_description"; MALFORMED records
keep "raw" (cut at 2000 characters, not redacted); answers nobody waited for
carry "unsolicited": true.
"""
import collections
import json

from host_tools.csms.logs import get_logger, utc_now_iso

log = get_logger("ocpp")

REDACTED = "***"
# Payload members never written to the log, whatever their nesting (SEC16
# AuthorizationKey, 2.0.1 BasicAuthPassword, certificates and keys).
SECRET_MEMBERS = frozenset((
    "authorizationkey", "password", "basicauthpassword", "certificate", "certificatechain",
    "csr", "privatekey", "exiresponse", "exirequest",
))
# Configuration keys / variables whose value is secret.
SECRET_KEYS = frozenset(("authorizationkey", "basicauthpassword"))
MAX_RAW = 2000


def redact(payload):
    """A copy of `payload` with secrets replaced by "***"."""
    if isinstance(payload, dict):
        out = {}
        secret_value = False
        key = payload.get("key")
        if isinstance(key, str) and key.lower() in SECRET_KEYS:
            secret_value = True  # 1.6 ChangeConfiguration / GetConfiguration entries
        variable = payload.get("variable")
        if isinstance(variable, dict) and str(variable.get("name", "")).lower() in SECRET_KEYS:
            secret_value = True  # 2.0.1 SetVariables / GetVariables entries
        for k, v in payload.items():
            if k.lower() in SECRET_MEMBERS:
                out[k] = REDACTED
            elif secret_value and k in ("value", "attributeValue"):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(payload, list):
        return [redact(v) for v in payload]
    return payload


class MessageLog:
    def __init__(self, path=None, size=10000):
        self.records = collections.deque(maxlen=size)
        self._file = open(path, "a", encoding="utf-8") if path else None

    def add(self, record):
        record["ts"] = utc_now_iso()
        self.records.append(record)
        if self._file is not None or log.isEnabledFor(10):
            line = json.dumps(record, separators=(",", ":"), default=str)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
            log.debug("%s", line)
        return record

    def frame(self, charger, direction, mtype, msg_id, action, payload, correlation_id,
              rtt_ms=None, fault=None, **extra):
        record = {
            "charger": charger,
            "dir": direction,
            "type": mtype,
            "id": msg_id,
            "action": action,
            "payload": redact(payload),
            "correlation_id": correlation_id,
        }
        if rtt_ms is not None:
            record["rtt_ms"] = round(rtt_ms, 3)
        if fault is not None:
            record["fault"] = fault
        record.update(extra)
        return self.add(record)

    def malformed(self, charger, direction, raw, correlation_id, fault=None, **extra):
        return self.frame(charger, direction, "MALFORMED", extra.pop("msg_id", None), None, None,
                          correlation_id, fault=fault, raw=raw[:MAX_RAW], **extra)

    def query(self, charger=None, correlation_id=None, action=None, limit=None):
        out = []
        for r in self.records:
            if charger is not None and r["charger"] != charger:
                continue
            if correlation_id is not None and r["correlation_id"] != correlation_id:
                continue
            if action is not None and r["action"] != action:
                continue
            out.append(r)
        if limit is not None:
            out = out[-limit:]
        return out

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
