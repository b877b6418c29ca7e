"""One charger's OCPP-J connection, on the `ocpp` package's ChargePoint.

The package gives the routing of CALLs to `@on` handlers (with its payload
conversion and result dataclasses), the call lock and the message classes.
This layer takes over what a bench CSMS must control itself:
- framing checks and CALLERRORs spelled for the negotiated version
  (firmware/ocpp/errors.py; the package answers 1.6 peers with 2.0.1
  spellings and swaps NotImplemented/NotSupported, see STYLE.md);
- schema validation with the error code the specifications name;
- one message-log record per frame, with round trip and correlation id;
- fault injection on incoming CALLs and malformed frames sent out;
- `call()` for any action with a dict payload, answered by an `Answer`.
"""
import asyncio
import json
import time
import uuid

from aiohttp import WSMsgType
from jsonschema.exceptions import best_match
from ocpp.messages import Call, get_validator
from ocpp.routing import on

from firmware.ocpp import errors as E
from host_tools.csms import common
from host_tools.csms import faults as F
from host_tools.csms.logs import correlation_id, get_logger, utc_now_iso
from host_tools.csms.storage import digest

log = get_logger("session")

MAX_DESCRIPTION = 255  # errorDescription string[255] in 2.0.1 (P4 Table 7); kept for 1.6
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode

# jsonschema validator keyword -> error key (J16 Table 7; P4 Table 8).
_SCHEMA_ERRORS = {
    "type": E.E_TYPE,
    "required": E.E_OCCURRENCE,
    "minItems": E.E_OCCURRENCE,
    "maxItems": E.E_OCCURRENCE,
    "additionalProperties": E.E_FORMAT,
    "enum": E.E_PROPERTY,
    "maxLength": E.E_PROPERTY,
    "minLength": E.E_PROPERTY,
    "minimum": E.E_PROPERTY,
    "maximum": E.E_PROPERTY,
    "exclusiveMinimum": E.E_PROPERTY,
    "exclusiveMaximum": E.E_PROPERTY,
    "multipleOf": E.E_PROPERTY,
    "pattern": E.E_PROPERTY,
    "format": E.E_PROPERTY,
}

# 1.6 schemas whose decimals must be read as Decimal for multipleOf checks.
_DECIMAL_ACTIONS = frozenset(("SetChargingProfile", "RemoteStartTransaction", "GetCompositeSchedule"))

# TriggerMessage requestedMessage -> the action it lets a Pending charger send.
_TRIGGERED = {
    "SignChargePointCertificate": "SignCertificate",
    "SignChargingStationCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
}


class ChargerOffline(Exception):
    """The charger is not connected, or the connection closed while waiting."""


class ChargerTimeout(Exception):
    """The charger did not answer in time."""


class ConnectionClosed(Exception):
    def __init__(self, code=None):
        Exception.__init__(self, "connection closed (%s)" % code)
        self.code = code


class Answer:
    """A charger's answer to a CALL: kind "result" (payload) or "error"
    (error_code, error_description, error_details); problem: a schema
    violation in a result, or None; rtt_ms: round trip."""

    __slots__ = ("message_id", "kind", "payload", "error_code", "error_description", "error_details",
                 "problem", "rtt_ms")

    def __init__(self, message_id, kind, payload=None, error_code=None, error_description=None,
                 error_details=None, problem=None, rtt_ms=None):
        self.message_id = message_id
        self.kind = kind
        self.payload = payload
        self.error_code = error_code
        self.error_description = error_description
        self.error_details = error_details
        self.problem = problem
        self.rtt_ms = rtt_ms

    def to_json(self):
        out = {"messageId": self.message_id, "rttMs": self.rtt_ms}
        if self.kind == "result":
            out["answer"] = "CALLRESULT"
            out["payload"] = self.payload
            if self.problem:
                out["schemaError"] = self.problem
        else:
            out["answer"] = "CALLERROR"
            out["errorCode"] = self.error_code
            out["errorDescription"] = self.error_description
            out["errorDetails"] = self.error_details
        return out


class WsAdapter:
    """aiohttp's server WebSocket as the `recv()`/`send()` the ocpp package uses."""

    def __init__(self, ws):
        self.ws = ws

    async def recv(self):
        msg = await self.ws.receive()
        if msg.type == WSMsgType.TEXT:
            return msg.data
        if msg.type == WSMsgType.BINARY:
            # OCPP-J uses text frames; read a binary one as text and let the
            # JSON check answer it.
            return msg.data.decode("utf-8", "replace")
        raise ConnectionClosed(self.ws.close_code)

    async def send(self, text):
        if self.ws.closed:
            raise ConnectionClosed(self.ws.close_code)
        await self.ws.send_str(text)


def schema_problem(version, message_type, action, payload):
    """(error key, message, path) of the first schema violation, or None.
    Raises LookupError when the package has no schema for the action."""
    package_version = "1.6" if version == E.V16 else "2.0.1"
    try:
        if version == E.V16 and action in _DECIMAL_ACTIONS:
            import decimal
            validator = get_validator(message_type, action, package_version, parse_float=decimal.Decimal)
            payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
        else:
            validator = get_validator(message_type, action, package_version)
    except (OSError, ValueError):
        raise LookupError(action)
    err = best_match(validator.iter_errors(payload))
    if err is None:
        return None
    path = ".".join(str(p) for p in err.absolute_path)
    return _SCHEMA_ERRORS.get(err.validator, E.E_FORMAT), err.message, path


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class OcppSession:
    """Mixed into ocpp.v16.ChargePoint / ocpp.v201.ChargePoint (see v16.py, v201.py).

    Subclasses set VERSION (errors.V16 / V201), ACTIONS (every action name of
    the version) and LEDGER_ACTIONS (transaction messages kept in the ledger).
    """

    VERSION = None
    ACTIONS = frozenset()
    LEDGER_ACTIONS = frozenset()

    def attach(self, server, ws, request):
        self.server = server
        self.storage = server.storage
        self.msglog = server.message_log
        self.faults = server.faults.of(self.id)
        self.ws = ws
        self.request = request
        self.closed = False
        self.connected_at = time.monotonic()
        self._pending = {}  # message id -> [future, action, t_sent, correlation id]
        self._incoming = {}  # message id -> (action, payload, t_received)
        self._answer_rules = {}  # message id -> ("delay", s) | ("no_answer",) | ("drop", params)
        self._tasks = set()
        self._triggered = set()
        row = self.storage.get_charger(self.id)
        self.boot_status = row["boot_status"] if row else None

    # -- helpers for handlers -------------------------------------------
    def payload_of(self, message_id):
        """The received payload (camelCase, as sent) of the CALL being handled."""
        return self._incoming[message_id][1]

    def store_meter_values(self, msg_id, payload, tx_id, evse_id, connector_id):
        """A MeterValues CALL into the ledger and, unless seen before, its samples."""
        st = self.storage
        d = digest("MeterValues", payload)
        if st.seen(self.id, d) is not None:
            st.append_ledger(self.id, msg_id, "MeterValues", payload, "duplicate", tx_id, message_digest=d)
        else:
            seq = st.append_ledger(self.id, msg_id, "MeterValues", payload, "meter_values", tx_id, message_digest=d)
            st.add_meter_values(self.id, tx_id, evse_id, connector_id,
                                common.flatten_meter_values(payload["meterValue"]), seq)
        st.commit()

    def spawn(self, coro):
        """Run coro beside the receive loop; cancelled when the connection ends."""
        task = asyncio.ensure_future(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guarded(self, coro):
        try:
            await coro
        except (ConnectionClosed, ConnectionError, ChargerOffline):
            pass  # the connection went away meanwhile
        except Exception:
            log.exception("%s: background task failed", self.id)

    def error_frame(self, message_id, key, description="", details=None):
        return _DUMPS([4, message_id, E.code(self.VERSION, key), description[:MAX_DESCRIPTION], details or {}])

    # -- receive --------------------------------------------------------
    async def start(self):
        """Read frames until the connection closes."""
        try:
            while True:
                raw = await self._connection.recv()
                try:
                    await self.route_message(raw)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug here must not end the connection
                    log.exception("%s: failed to handle a frame", self.id)
        except ConnectionClosed:
            pass
        finally:
            self._close()

    def _close(self):
        self.closed = True
        for entry in self._pending.values():
            if not entry[0].done():
                entry[0].set_exception(ChargerOffline("connection closed"))
        for task in list(self._tasks):
            task.cancel()

    async def route_message(self, raw):
        now = time.monotonic()
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, list) or len(frame) < 3 or not _is_int(frame[0]) \
                or not isinstance(frame[1], str):
            # Not an RPC frame, or its id is unreadable: P4 §4.2.3 answers with
            # id "-1" (RpcFrameworkError; 1.6 has no rule, FormationViolation is
            # its "not conform the PDU structure").
            msg_id = frame[1] if isinstance(frame, list) and len(frame) > 1 and isinstance(frame[1], str) \
                else "-1"
            self.msglog.malformed(self.id, "in", raw, None, msg_id=msg_id)
            await self._send_error(msg_id, E.E_RPC_FRAMEWORK, "Not a valid OCPP-J RPC frame")
            return
        mtype, msg_id = frame[0], frame[1]
        if mtype == 2:
            if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
                self.msglog.malformed(self.id, "in", raw, None, msg_id=msg_id)
                await self._send_error(msg_id, E.E_RPC_FRAMEWORK, "A CALL is [2, id, action, {payload}]")
                return
            await self._on_call(msg_id, frame[2], frame[3], now)
        elif mtype == 3 and len(frame) == 3 and isinstance(frame[2], dict):
            self._on_answer(msg_id, Answer(msg_id, "result", payload=frame[2]), now)
        elif mtype == 4 and len(frame) >= 4:
            details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
            self._on_answer(msg_id, Answer(msg_id, "error", error_code=frame[2], error_description=frame[3],
                                           error_details=details), now)
        elif mtype in (2, 3, 4):
            self.msglog.malformed(self.id, "in", raw, None, msg_id=msg_id)
        else:
            # Unknown message type: 1.6 ignores it (J16 §4.1.3); 2.0.1 ignores
            # the payload and answers MessageTypeNotSupported (P4 §4.1.3, §4.4).
            self.msglog.malformed(self.id, "in", raw, None, msg_id=msg_id)
            if self.VERSION != E.V16:
                await self._send_error(msg_id, E.E_MESSAGE_TYPE, "Unknown message type %d" % mtype)

    def _on_answer(self, msg_id, answer, now):
        entry = self._pending.get(msg_id)
        if entry is None and msg_id == "-1":
            # A CALLERROR for a frame whose id the charger could not read:
            # give it to the malformed frame waiting for one.
            for key, candidate in self._pending.items():
                if candidate[4]:
                    entry = candidate
                    break
        mtype = "CALLRESULT" if answer.kind == "result" else "CALLERROR"
        if entry is None:
            self.msglog.frame(self.id, "in", mtype, msg_id, None, answer.payload if answer.kind == "result"
                              else answer.error_details, None, unsolicited=True,
                              **self._error_fields(answer))
            log.warning("%s: answer to unknown or expired CALL %s", self.id, msg_id)
            return
        future, action, t_sent, corr = entry[:4]
        answer.rtt_ms = round((now - t_sent) * 1000.0, 3)
        if answer.kind == "result" and action is not None:
            try:
                problem = schema_problem(self.VERSION, 3, action, answer.payload)
            except LookupError:
                problem = None
            if problem is not None:
                answer.problem = "%s (at %s)" % (problem[1], problem[2] or "payload")
        extra = self._error_fields(answer)
        if answer.problem:
            extra["schema_error"] = answer.problem
        self.msglog.frame(self.id, "in", mtype, msg_id, action,
                          answer.payload if answer.kind == "result" else answer.error_details,
                          corr, rtt_ms=answer.rtt_ms, **extra)
        if not future.done():
            future.set_result(answer)

    @staticmethod
    def _error_fields(answer):
        if answer.kind == "result":
            return {}
        return {"error_code": answer.error_code, "error_description": answer.error_description}

    async def _on_call(self, msg_id, action, payload, now):
        self.msglog.frame(self.id, "in", "CALL", msg_id, action, payload, None)
        fault = self.faults.take(action)
        if fault is not None:
            kind, params = fault
            if kind == "call_error":
                self._ledger_fault(msg_id, action, payload, "call_error")
                key = F.KNOWN_CODES[params["code"]]
                self._incoming[msg_id] = (action, payload, now)
                self._answer_rules[msg_id] = ("fault", "call_error")
                await self._send(self.error_frame(msg_id, key, params["description"], params["details"]))
                return
            if kind == "delay":
                self._answer_rules[msg_id] = ("delay", params["seconds"])
                self.spawn(self._process(msg_id, action, payload, now))
                return
            if kind in ("no_answer", "drop"):
                if not params["process"]:
                    self._ledger_fault(msg_id, action, payload, kind)
                    self.msglog.frame(self.id, "out", "NO_ANSWER", msg_id, action, None, None, fault=kind,
                                      processed=False)
                    if kind == "drop":
                        await self.drop(params.get("close_code"), params.get("refuse_seconds", 0),
                                        params.get("refuse_status", 503))
                    return
                self._answer_rules[msg_id] = (kind, params)
            elif kind == "malformed":
                self.spawn(self.send_malformed(params["malformation"], timeout=self.server.call_timeout))
        await self._process(msg_id, action, payload, now)

    def _ledger_fault(self, msg_id, action, payload, fault):
        if action in self.LEDGER_ACTIONS:
            self.storage.append_ledger(self.id, msg_id, action, payload, "fault", fault=fault)
            self.storage.commit()

    def check_call(self, action, payload):
        """(error key, description, details) if the CALL cannot be handled, else None."""
        if action not in self.ACTIONS:
            return E.E_NOT_IMPLEMENTED, "Unknown action %s" % action, {}
        if action not in self.route_map:
            return E.E_NOT_SUPPORTED, "%s is not supported by this CSMS" % action, {}
        if self.boot_status in ("Pending", "Rejected") and action != "BootNotification":
            if action in self._triggered:
                self._triggered.discard(action)
            else:
                refusal = self.before_accepted(action)
                if refusal is not None:
                    return refusal
        try:
            problem = schema_problem(self.VERSION, 2, action, payload)
        except LookupError:
            return E.E_NOT_SUPPORTED, "No schema for %s" % action, {}
        if problem is not None:
            key, message, path = problem
            return key, message, {"path": path} if path else {}
        return None

    def before_accepted(self, action):
        """A CALL other than BootNotification while the last boot answer was
        Pending or Rejected; a version returns a CALLERROR or None."""
        return None

    async def _process(self, msg_id, action, payload, now):
        err = self.check_call(action, payload)
        self._incoming[msg_id] = (action, payload, now)
        if err is not None:
            if action in self.LEDGER_ACTIONS:
                self.storage.append_ledger(self.id, msg_id, action, payload, "invalid",
                                           response={"errorCode": E.code(self.VERSION, err[0])})
                self.storage.commit()
            await self._send(self.error_frame(msg_id, err[0], err[1], err[2]))
            return
        try:
            await self._handle_call(Call(msg_id, action, payload))
        finally:
            self._incoming.pop(msg_id, None)
            # Handlers commit their work; a failed one (answered InternalError
            # by the package) must not leave half of it for the next commit.
            if self.storage.rollback_if_open():
                log.warning("%s: %s %s failed; its writes were rolled back", self.id, action, msg_id)

    async def _send_error(self, msg_id, key, description):
        await self._send(self.error_frame(msg_id, key, description))

    # -- send answers ---------------------------------------------------
    async def _send(self, message):
        """Every answer to a charger's CALL passes here (the package calls it too)."""
        frame = json.loads(message)
        msg_id = frame[1]
        info = self._incoming.pop(msg_id, None)
        action = info[0] if info else None
        rtt = (time.monotonic() - info[2]) * 1000.0 if info else None
        rule = self._answer_rules.pop(msg_id, None)
        fault = None
        if frame[0] == 3:
            mtype, payload, extra = "CALLRESULT", frame[2], {}
        else:
            mtype, payload = "CALLERROR", frame[4]
            extra = {"error_code": frame[2], "error_description": frame[3]}
        if rule is not None:
            fault = rule[1] if rule[0] == "fault" else rule[0]
            if rule[0] == "delay":
                extra["delay_s"] = rule[1]
                await asyncio.sleep(rule[1])
            elif rule[0] in ("no_answer", "drop"):
                self.msglog.frame(self.id, "out", mtype, msg_id, action, payload, None, rtt_ms=rtt,
                                  fault=fault, sent=False, **extra)
                if rule[0] == "drop":
                    p = rule[1]
                    await self.drop(p.get("close_code"), p.get("refuse_seconds", 0), p.get("refuse_status", 503))
                return
            rtt = (time.monotonic() - info[2]) * 1000.0 if info else None
        self.msglog.frame(self.id, "out", mtype, msg_id, action, payload, None, rtt_ms=rtt, fault=fault, **extra)
        await self._connection.send(message)

    # -- CALLs to the charger -------------------------------------------
    async def call(self, action, payload, timeout=None, validate=True):
        """Send a CALL and return the charger's Answer.

        Raises ValueError (bad request payload, when validate), ChargerOffline,
        ChargerTimeout. One CALL in flight at a time (P4 §4.1.1); waiting for
        the lock counts toward the timeout.
        """
        if validate:
            try:
                problem = schema_problem(self.VERSION, 2, action, payload)
            except LookupError:
                raise ValueError("action", "Unknown action %s for %s" % (action, self.VERSION))
            if problem is not None:
                raise ValueError("payload" + ("." + problem[2] if problem[2] else ""), problem[1])
        msg_id = str(uuid.uuid4())
        text = _DUMPS([2, msg_id, action, payload])
        answer = await self._exchange(msg_id, text, action, payload, timeout, "CALL")
        if action == "TriggerMessage" and answer.kind == "result" and answer.payload.get("status") == "Accepted":
            requested = payload.get("requestedMessage")
            self._triggered.add(_TRIGGERED.get(requested, requested))
        return answer

    async def _exchange(self, msg_id, text, action, payload, timeout, mtype, fault=None, any_id=False):
        if timeout is None:
            timeout = self.server.call_timeout
        try:
            return await asyncio.wait_for(self._locked_exchange(msg_id, text, action, payload, mtype, fault,
                                                                any_id), timeout)
        except asyncio.TimeoutError:
            raise ChargerTimeout("no answer to %s %s within %.1f s" % (action, msg_id, timeout))

    async def _locked_exchange(self, msg_id, text, action, payload, mtype, fault, any_id):
        corr = correlation_id.get()
        async with self._call_lock:
            if self.closed:
                raise ChargerOffline("connection closed")
            future = asyncio.get_running_loop().create_future()
            self._pending[msg_id] = [future, action if mtype == "CALL" else None, time.monotonic(), corr, any_id]
            try:
                if mtype == "CALL":
                    self.msglog.frame(self.id, "out", "CALL", msg_id, action, payload, corr)
                else:
                    self.msglog.malformed(self.id, "out", text, corr, fault=fault, msg_id=msg_id)
                try:
                    await self._connection.send(text)
                except Exception as exc:  # closed or closing: aiohttp raises several kinds
                    raise ChargerOffline(str(exc))
                return await future
            finally:
                self._pending.pop(msg_id, None)

    async def send_malformed(self, malformation, action=None, payload=None, fields=None, message_type=7,
                             raw=None, timeout=5.0):
        """Send a malformed frame (faults.malformed_frame); wait up to `timeout`
        for the charger's answer with that id (or "-1"). Returns (frame text,
        message id, Answer or None)."""
        default_action, default_payload = F.DEFAULT_CALL[E.V16 if self.VERSION == E.V16 else E.V201]
        if malformation == "unknown_action":
            action = action or "UnknownAction"
        msg_id = str(uuid.uuid4())
        text = F.malformed_frame(malformation, msg_id, action or default_action,
                                 default_payload if payload is None else payload, fields, message_type, raw)
        try:
            answer = await self._exchange(msg_id, text, None, None, timeout, "MALFORMED",
                                          fault="malformed:" + malformation, any_id=True)
        except ChargerTimeout:
            answer = None
        return text, msg_id, answer

    async def drop(self, close_code=None, refuse_seconds=0, refuse_status=503):
        """Drop the connection: a close frame with close_code, or (None) cut
        TCP without one, so the charger sees 1006. Optionally refuse its
        reconnects for refuse_seconds."""
        if refuse_seconds:
            self.faults.refuse(refuse_seconds, refuse_status)
        self.msglog.add({"charger": self.id, "dir": "out", "type": "DROP", "id": None, "action": None,
                         "payload": None, "correlation_id": correlation_id.get(),
                         "close_code": close_code, "fault": "drop"})
        if close_code is None:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        else:
            await self.ws.close(code=close_code, message=b"Injected fault")

    def now_iso(self):
        return utc_now_iso()


def acknowledge(cls, results):
    """Add to a ChargePoint class one `@on` handler per (action, result class)
    for CALLs answered with an empty (or fixed) result and nothing stored."""
    for action, result in results:
        def handler(self, _result=result, **_):
            return _result()
        handler.__name__ = "ack_" + action
        setattr(cls, handler.__name__, on(action, skip_schema_validation=True)(handler))
    return cls
