# OCPP-J RPC: frames in, frames out, nothing else (no sockets, files or clocks).
#
# One Endpoint per WebSocket connection. It parses every received text frame,
# answers CALLs through a handler table (validating both the request and our
# response against the generated schema tables), matches CALLRESULT/CALLERROR
# to the one CALL we have outstanding, times that CALL out on the caller's
# clock, and answers malformed input with the CALLERROR the negotiated
# version prescribes.
#
# References: OCPP-J 1.6 §4 (J16), OCPP 2.0.1 Part 4 §4 (P4), OCPP 2.1 Part 4
# §4 (P4-21), and the 1.6-J errata (J16E).
from firmware.compat import const, json_dumps, json_loads, urandom, print_exception
from firmware.ocpp import errors
from firmware.ocpp.errors import (
    E_NOT_IMPLEMENTED,
    E_NOT_SUPPORTED,
    E_INTERNAL,
    E_FORMAT,
    E_MESSAGE_TYPE,
    E_RPC_FRAMEWORK,
    MAX_DESCRIPTION,
    OcppError,
    V21,
)

CALL = const(2)
CALLRESULT = const(3)
CALLERROR = const(4)
CALLRESULTERROR = const(5)  # 2.1 only (P4-21 §4.2.3)
SEND = const(6)  # 2.1 only, never answered (P4-21 §4.2.4)

MAX_ID = const(36)  # J16 §4.1.4 Table 3; P4 §4.1.4 string[36]
UNREADABLE_ID = "-1"  # P4 §4.2.3: the id to answer with when it cannot be read
DEFAULT_TIMEOUT_MS = const(30000)

TX = "tx"
RX = "rx"


class _Defer:
    pass


# A handler returns DEFER to answer later with Endpoint.answer(); the id of
# the CALL being handled is Endpoint.current_id while the handler runs.
DEFER = _Defer()

# Message types each version knows (J16 §4.1.3; P4 §4.1.3; P4-21 §4.1.3).
_KNOWN_TYPES = {
    errors.V16: (CALL, CALLRESULT, CALLERROR),
    errors.V201: (CALL, CALLRESULT, CALLERROR),
    errors.V21: (CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND),
}
# An unknown message type: 1.6 and 2.1 ignore the message (J16 §4.1.3,
# P4-21 §4.1.3/§4.4); 2.0.1 answers MessageTypeNotSupported (P4 §4.4).
_ANSWER_UNKNOWN_TYPE = {errors.V16: False, errors.V201: True, errors.V21: False}


class IdGenerator:
    """Unique message ids: a random per-boot prefix and a counter (≤ 36 chars).

    J16E §3.1 / P4 §4.1.4: unique per sender over all connections of the
    charge point identity; a random prefix keeps ids unique across reboots.
    """

    def __init__(self, prefix=None):
        if prefix is None:
            b = urandom(6)
            prefix = "".join("%02x" % x for x in b)
        self.prefix = prefix + "-"
        self.n = 0

    def __call__(self):
        self.n += 1
        return self.prefix + str(self.n)


class NullListener:
    """What an Endpoint tells its owner; subclass or duck-type it."""

    def rpc_result(self, action, payload, ctx, rtt_ms):
        pass

    def rpc_error(self, action, key, code, description, details, ctx, rtt_ms):
        # key: errors.E_*; code: the string as received (or ours, for a local
        # failure such as an invalid CALLRESULT payload).
        pass

    def rpc_timeout(self, action, ctx):
        pass

    def rpc_lost(self, action, ctx):
        # The connection went away with this CALL unanswered.
        pass

    def rpc_send(self, action, payload):
        # 2.1 SEND received (never answered).
        pass

    def rpc_result_error(self, key, code, description, details):
        # 2.1 CALLRESULTERROR: the peer could not process one of our CALLRESULTs.
        pass


def _salvage_id(text):
    """The messageId of a frame that is not valid JSON, if its start is readable.

    `[2, "abc", ...garbage` still lets the peer match our CALLERROR to its CALL.
    """
    i = text.find('"')
    if i < 0 or i > 8:
        return UNREADABLE_ID
    head = text[:i].replace(" ", "").replace("\t", "")
    if head not in ("[2,", "[3,", "[4,", "[5,", "[6,"):
        return UNREADABLE_ID
    j = text.find('"', i + 1)
    if j < 0 or j - i - 1 > MAX_ID or text.find("\\", i + 1, j) >= 0:
        return UNREADABLE_ID
    return text[i + 1 : j]


class Endpoint:
    """The RPC layer of one OCPP-J connection.

    version: errors.V16 / V201 / V21 (from the negotiated subprotocol).
    actions: {action: (request_node, response_node)} from firmware.ocpp.schemas.
    handlers: {action: fn(payload) -> response payload}; raise OcppError to
      answer with a CALLERROR. An action in `actions` without a handler is
      answered NotSupported; an action not in `actions` NotImplemented.
    listener: receives answers to our CALLs (see NullListener).
    check: the validator, check(node, value) -> None or (E_* key, where).
    log: None, or fn(direction, message_type, msg_id, action, body, rtt_ms),
      called once per frame; body is the payload, or (code, description,
      details) for errors, or the raw text when it could not be parsed.
    """

    def __init__(
        self,
        version,
        actions,
        handlers,
        listener=None,
        check=None,
        new_id=None,
        timeout_ms=DEFAULT_TIMEOUT_MS,
        log=None,
        validate_out=True,
        on_exception=None,
    ):
        if check is None:
            from firmware.ocpp.validate import check
        self.version = version
        self.codes = errors.CODES[version]
        self.known_types = _KNOWN_TYPES[version]
        self.actions = actions
        self.handlers = handlers
        self.listener = listener or NullListener()
        self.check = check
        self.new_id = new_id or IdGenerator()
        self.timeout_ms = timeout_ms
        self.log = log
        self.validate_out = validate_out
        self.on_exception = on_exception
        # The one CALL we have outstanding: [msg_id, action, sent_ms, deadline_ms, ctx]
        self.pending = None
        self.current_id = None
        self.deferred = {}  # msg_id -> action, CALLs we answer later
        self.stats = {"rx": 0, "tx": 0, "errors_sent": 0, "unknown_answers": 0, "timeouts": 0}

    # ---- our CALLs ---------------------------------------------------------

    def busy(self):
        return self.pending is not None

    def call(self, action, payload, now_ms, ctx=None):
        """Frame a CALL and make it the outstanding one; returns the text to send.

        Raises OcppError(E_PROTOCOL) if a CALL is already outstanding (one per
        direction: SHOULD in J16 §4.1.1, SHALL in P4 §4.1.1), and OcppError with
        the validation class if our payload breaks the schema: a bug of ours
        never reaches the CSMS as a bad frame.
        """
        if self.pending is not None:
            raise OcppError(errors.E_PROTOCOL, "a CALL is already outstanding")
        if self.validate_out:
            self._check_out(action, payload, 0)
        msg_id = self.new_id()
        text = json_dumps([CALL, msg_id, action, payload])
        self.pending = [msg_id, action, now_ms, now_ms + self.timeout_ms, ctx]
        self.stats["tx"] += 1
        if self.log:
            self.log(TX, CALL, msg_id, action, payload, None)
        return text

    def send(self, action, payload):
        """2.1 SEND: a message that is never answered and may cross a CALL."""
        if self.version != V21:
            raise OcppError(E_NOT_SUPPORTED, "SEND exists from OCPP 2.1")
        if self.validate_out:
            self._check_out(action, payload, 0)
        msg_id = self.new_id()
        self.stats["tx"] += 1
        if self.log:
            self.log(TX, SEND, msg_id, action, payload, None)
        return json_dumps([SEND, msg_id, action, payload])

    def deadline(self):
        """When poll() must next run (ms), or None."""
        p = self.pending
        return p[3] if p is not None else None

    def poll(self, now_ms):
        """Time out the outstanding CALL if its deadline has passed."""
        p = self.pending
        if p is not None and now_ms >= p[3]:
            self.pending = None
            self.stats["timeouts"] += 1
            self.listener.rpc_timeout(p[1], p[4])

    def lost(self):
        """The connection closed: the outstanding CALL will never be answered."""
        p = self.pending
        if p is not None:
            self.pending = None
            self.listener.rpc_lost(p[1], p[4])

    # ---- receiving ---------------------------------------------------------

    def receive(self, text, now_ms):
        """Handle one received text frame; returns the text to send back, or None."""
        self.stats["rx"] += 1
        try:
            msg = json_loads(text)
        except ValueError:
            msg = None
        if type(msg) is not list:
            # Not JSON, or not an array: not a valid RPC frame (J16 §4.1.2,
            # §4.2.3 FormationViolation; P4 §4.2.3 RpcFrameworkError, with id
            # "-1" when the id cannot be read).
            if self.log:
                self.log(RX, 0, None, None, text, None)
            what = "frame is not valid JSON" if msg is None else "frame is not a JSON array"
            return self._reply_error(_salvage_id(text), E_RPC_FRAMEWORK, what, None)
        n = len(msg)
        mtype = msg[0] if n else None
        msg_id = msg[1] if n > 1 else None
        if type(msg_id) is not str:
            msg_id = None
        if type(mtype) is int and mtype not in self.known_types:
            # The payload of an unknown message type is ignored (see _ANSWER_UNKNOWN_TYPE).
            if self.log:
                self.log(RX, mtype, msg_id, None, text, None)
            if _ANSWER_UNKNOWN_TYPE[self.version]:
                return self._reply_error(
                    msg_id or UNREADABLE_ID, E_MESSAGE_TYPE, "unknown message type %d" % mtype, None
                )
            return None
        if msg_id is None or type(mtype) is not int:
            if self.log:
                self.log(RX, mtype, None, None, text, None)
            what = "messageId missing or not a string" if msg_id is None else "message type is not a number"
            return self._reply_error(msg_id or UNREADABLE_ID, E_RPC_FRAMEWORK, what, None)
        if mtype == CALL:
            return self._on_call(msg, n, msg_id, now_ms)
        if mtype == CALLRESULT or mtype == CALLERROR:
            return self._on_answer(msg, n, mtype, msg_id, now_ms)
        if mtype == SEND:
            self._on_send(msg, n, msg_id)
            return None
        # CALLRESULTERROR (2.1): the peer could not process our CALLRESULT.
        if self.log:
            self.log(RX, mtype, msg_id, None, msg[2:], None)
        if n >= 4 and type(msg[2]) is str:
            self.listener.rpc_result_error(
                errors.key_of(self.version, msg[2]), msg[2], msg[3], msg[4] if n > 4 else {}
            )
        return None

    def _on_call(self, msg, n, msg_id, now_ms):
        action = msg[2] if n > 2 else None
        payload = msg[3] if n > 3 else None
        if self.log:
            self.log(RX, CALL, msg_id, action, payload, None)
        if len(msg_id) > MAX_ID:
            return self._reply_error(msg_id, E_RPC_FRAMEWORK, "messageId longer than 36 characters", None)
        if n != 4 or type(action) is not str:
            return self._reply_error(msg_id, E_RPC_FRAMEWORK, "CALL must be [2, id, action, payload]", None)
        nodes = self.actions.get(action)
        if nodes is None:
            return self._reply_error(msg_id, E_NOT_IMPLEMENTED, "unknown action " + action, None)
        handler = self.handlers.get(action)
        if handler is None:
            return self._reply_error(msg_id, E_NOT_SUPPORTED, action + " is not supported", None)
        if type(payload) is not dict:
            return self._reply_error(msg_id, E_FORMAT, "payload must be a JSON object", None)
        bad = self.check(nodes[0], payload)
        if bad is not None:
            return self._reply_error(msg_id, bad[0], bad[1], None)
        self.current_id = msg_id
        try:
            response = handler(payload)
        except OcppError as e:
            return self._reply_error(msg_id, e.key, e.description, e.details)
        except Exception as e:  # a handler bug must never take the agent down
            self._exception(e)
            return self._reply_error(msg_id, E_INTERNAL, "handler failed: " + type(e).__name__, None)
        finally:
            self.current_id = None
        if response is DEFER:
            self.deferred[msg_id] = action
            return None
        return self._result(msg_id, action, nodes, response)

    def answer(self, msg_id, response):
        """The CALLRESULT text of a CALL whose handler returned DEFER."""
        action = self.deferred.pop(msg_id)
        return self._result(msg_id, action, self.actions[action], response)

    def _result(self, msg_id, action, nodes, response):
        if self.validate_out:
            bad = self.check(nodes[1], response)
            if bad is not None:
                # Our bug: answer InternalError rather than send a bad frame.
                self._exception(OcppError(bad[0], action + " response invalid: " + bad[1]))
                return self._reply_error(msg_id, E_INTERNAL, "response failed validation", None)
        self.stats["tx"] += 1
        if self.log:
            self.log(TX, CALLRESULT, msg_id, action, response, None)
        return json_dumps([CALLRESULT, msg_id, response])

    def _on_answer(self, msg, n, mtype, msg_id, now_ms):
        p = self.pending
        if p is None or p[0] != msg_id:
            # An answer to nothing we have outstanding (late after a timeout,
            # or a peer bug): logged and dropped; there is nothing to answer.
            self.stats["unknown_answers"] += 1
            if self.log:
                self.log(RX, mtype, msg_id, None, msg[2:], None)
            return None
        self.pending = None
        action = p[1]
        ctx = p[4]
        rtt = now_ms - p[2]
        listener = self.listener
        if mtype == CALLRESULT:
            payload = msg[2] if n == 3 else None
            if self.log:
                self.log(RX, CALLRESULT, msg_id, action, payload, rtt)
            if type(payload) is not dict:
                bad = (E_FORMAT, "CALLRESULT must be [3, id, payload object]")
            else:
                bad = self.check(self.actions[action][1], payload)
            if bad is None:
                listener.rpc_result(action, payload, ctx, rtt)
                return None
            # The answer breaks the schema: to us it is a failed call. 2.1 tells
            # the peer with a CALLRESULTERROR (P4-21 §4.2.3); 1.6 and 2.0.1 have
            # no frame for it.
            code = self.codes[bad[0]]
            listener.rpc_error(action, bad[0], code, bad[1], {"local": True}, ctx, rtt)
            if self.version == V21:
                return self._reply_error(msg_id, bad[0], action + " result invalid: " + bad[1], None, CALLRESULTERROR)
            return None
        code = msg[2] if n > 2 and type(msg[2]) is str else "GenericError"
        description = msg[3] if n > 3 and type(msg[3]) is str else ""
        details = msg[4] if n > 4 and type(msg[4]) is dict else {}
        if self.log:
            self.log(RX, CALLERROR, msg_id, action, (code, description, details), rtt)
        listener.rpc_error(action, errors.key_of(self.version, code), code, description, details, ctx, rtt)
        return None

    def _on_send(self, msg, n, msg_id):
        action = msg[2] if n > 2 else None
        payload = msg[3] if n > 3 else None
        if self.log:
            self.log(RX, SEND, msg_id, action, payload, None)
        # SEND is never answered (P4-21 §4.2.4): a bad one is only logged.
        if n != 4 or type(action) is not str or type(payload) is not dict:
            return
        nodes = self.actions.get(action)
        if nodes is None or self.check(nodes[0], payload) is not None:
            return
        self.listener.rpc_send(action, payload)

    # ---- helpers -----------------------------------------------------------

    def _check_out(self, action, payload, which):
        nodes = self.actions.get(action)
        if nodes is None:
            raise OcppError(E_NOT_IMPLEMENTED, "no schema for " + str(action))
        bad = self.check(nodes[which], payload)
        if bad is not None:
            raise OcppError(bad[0], action + ": " + bad[1])

    def _reply_error(self, msg_id, key, description, details, mtype=CALLERROR):
        # errorDescription: string[255] in 2.0.1/2.1 (P4 Table 7), kept for 1.6
        # too; errorDetails: always an object, {} when none (J16 Table 6).
        code = self.codes[key]
        if type(details) is not dict:
            details = {}
        if len(description) > MAX_DESCRIPTION:
            description = description[:MAX_DESCRIPTION]
        self.stats["tx"] += 1
        self.stats["errors_sent"] += 1
        if self.log:
            self.log(TX, mtype, msg_id, None, (code, description, details), None)
        return json_dumps([mtype, msg_id, code, description, details])

    def _exception(self, e):
        if self.on_exception is not None:
            self.on_exception(e)
        else:
            print_exception(e)
