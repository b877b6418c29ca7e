"""Fault injection per charger: what the CSMS does wrong on purpose.

Queued faults apply to the next `count` CALLs of an action ("*" = any) that the
charger sends, first matching rule first:
  call_error  answer with a CALLERROR (code spelled for the charger's version)
  delay       answer after `seconds`
  no_answer   never answer; with "process": true the CALL is still processed
              and stored (an answer lost on the way), else it is ignored
  drop        drop the connection instead of answering ("process" as above)
Immediate faults act when set: malformed (a malformed frame sent to the
charger, see malformed_frame), drop (close now), refuse_reconnect (handshakes
of this charger refused with 503 + Retry-After, or 404, for `seconds`).
Random mode draws, for every CALL from the charger, at most one fault from a
seeded generator with a probability per class: the same seed and the same
sequence of CALLs give the same faults.
"""
import json
import random
import time

from firmware.ocpp import errors as E
from host_tools.csms import validate as V

QUEUED = ("call_error", "delay", "no_answer", "drop")
IMMEDIATE = ("malformed", "drop", "refuse_reconnect")
MALFORMATIONS = ("invalid_json", "wrong_types", "missing_fields", "unknown_action",
                 "unknown_message_type", "raw")
RANDOM_CLASSES = ("call_error", "delay", "drop", "malformed", "no_answer")  # draw order

# Every code string either version spells, to its version-neutral key.
KNOWN_CODES = {}
for _version in (E.V16, E.V201):
    for _key, _text in enumerate(E.CODES[_version]):
        KNOWN_CODES.setdefault(_text, _key)
KNOWN_CODES["OccurenceConstraintViolation"] = E.E_OCCURRENCE
KNOWN_CODES["OccurrenceConstraintViolation"] = E.E_OCCURRENCE
KNOWN_CODES["FormationViolation"] = E.E_FORMAT
KNOWN_CODES["FormatViolation"] = E.E_FORMAT


def _code(value):
    return None if value in KNOWN_CODES else "Unknown CALLERROR code; use one of: %s." % ", ".join(
        sorted(KNOWN_CODES))


def _codes(value):
    for c in value:
        if c not in KNOWN_CODES:
            return _code(c)
    return None if value else "Must not be empty."


def _refuse_status(value):
    return None if value in (503, 404) else "Must be 503 or 404."


def _probabilities(value):
    total = 0.0
    for name, p in value.items():
        if name not in RANDOM_CLASSES:
            return "Unknown fault class %r; classes: %s." % (name, ", ".join(RANDOM_CLASSES))
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            return "Each probability must be a number from 0 to 1."
        total += p
    return None if total <= 1 else "Probabilities must add up to 1 or less."


def _range(value):
    if (len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1]):
        return None
    return "Must be [min, max] seconds with 0 <= min <= max."


SPECS = {
    "call_error": {
        "kind": V.field("str"), "action": V.field("str", default="*"),
        "count": V.field("int", default=1, check=V.positive),
        "code": V.field("str", required=True, check=_code),
        "description": V.field("str", default=""), "details": V.field("dict", default={}),
    },
    "delay": {
        "kind": V.field("str"), "action": V.field("str", default="*"),
        "count": V.field("int", default=1, check=V.positive),
        "seconds": V.field("number", required=True, check=V.bounded(0, 3600)),
    },
    "no_answer": {
        "kind": V.field("str"), "action": V.field("str", default="*"),
        "count": V.field("int", default=1, check=V.positive),
        "process": V.field("bool", default=False),
    },
    "drop": {
        "kind": V.field("str"), "action": V.field("str"),
        "count": V.field("int", default=1, check=V.positive),
        "process": V.field("bool", default=False),
        "close_code": V.field("int", check=V.bounded(1000, 4999)),
        "refuse_seconds": V.field("number", default=0, check=V.bounded(0, 86400)),
        "refuse_status": V.field("int", default=503, check=_refuse_status),
    },
    "refuse_reconnect": {
        "kind": V.field("str"),
        "seconds": V.field("number", required=True, check=V.bounded(0, 86400)),
        "status": V.field("int", default=503, check=_refuse_status),
    },
    "malformed": {
        "kind": V.field("str"),
        "malformation": V.field("str", required=True, choices=MALFORMATIONS),
        "action": V.field("str"), "payload": V.field("dict"),
        "fields": V.field("list"), "message_type": V.field("int", default=7),
        "raw": V.field("str"), "timeout": V.field("number", default=5.0, check=V.bounded(0, 300)),
    },
    "random": {
        "kind": V.field("str"), "seed": V.field("any", required=True),
        "probabilities": V.field("dict", required=True, check=_probabilities),
        "codes": V.field("list", default=["InternalError", "GenericError"], check=_codes),
        "delay_seconds": V.field("list", default=[0.5, 5.0], check=_range),
        "process_probability": V.field("number", default=0.5, check=V.bounded(0, 1)),
        "refuse_seconds": V.field("number", default=0, check=V.bounded(0, 86400)),
    },
}
KINDS = tuple(SPECS)


def parse(spec):
    """A checked fault spec (dict with defaults) or raises validate.Invalid."""
    if not isinstance(spec, dict):
        raise V.Invalid({"body": ["Must be a JSON object."]})
    kind = spec.get("kind")
    if kind not in SPECS:
        raise V.Invalid({"kind": ["Must be one of: %s." % ", ".join(KINDS)]})
    out = V.check(spec, SPECS[kind])
    out["kind"] = kind
    if kind == "malformed" and out["malformation"] == "raw" and out["raw"] is None:
        raise V.Invalid({"raw": ["Required when malformation is raw."]})
    return out


# Default CSMS -> charger CALL for malformed frames when none is given: a
# request every charge point handles, with typed fields to break.
DEFAULT_CALL = {
    E.V16: ("ChangeAvailability", {"connectorId": 0, "type": "Operative"}),
    E.V201: ("ChangeAvailability", {"operationalStatus": "Operative"}),
}


def wrong_type(value):
    """The value with a different JSON type: number -> string of it, string ->
    1, bool -> "true"/"false", object/array -> its JSON text, null -> 0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return 1
    if value is None:
        return 0
    return json.dumps(value, separators=(",", ":"))


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def malformed_frame(malformation, msg_id, action, payload, fields=None, message_type=7, raw=None):
    """The exact text of a malformed frame (pure; documented in the README).

    invalid_json         the CALL's JSON with its final "]" cut off
    wrong_types          every top-level field (or those in `fields`) retyped by wrong_type()
    missing_fields       every top-level field (or those in `fields`) removed
    unknown_action       action "UnknownAction" (or the given action) with the payload
    unknown_message_type [message_type, id, action, payload], 7 by default
    raw                  `raw` as is
    """
    if malformation == "raw":
        return raw
    names = list(payload) if not fields else [f for f in fields if f in payload]
    if malformation == "invalid_json":
        return _dumps([2, msg_id, action, payload])[:-1]
    if malformation == "wrong_types":
        bad = dict(payload)
        for name in names:
            bad[name] = wrong_type(payload[name])
        return _dumps([2, msg_id, action, bad])
    if malformation == "missing_fields":
        return _dumps([2, msg_id, action, {k: v for k, v in payload.items() if k not in names}])
    if malformation == "unknown_action":
        return _dumps([2, msg_id, action, payload])
    if malformation == "unknown_message_type":
        return _dumps([message_type, msg_id, action, payload])
    raise ValueError(malformation)


class RandomFaults:
    """Seeded draws for one charger; `draw(action)` -> decision or None."""

    def __init__(self, spec, charger_id):
        self.spec = spec
        self.rng = random.Random("%s/%s" % (spec["seed"], charger_id))

    def draw(self, action):
        spec = self.spec
        r = self.rng.random()
        acc = 0.0
        for name in RANDOM_CLASSES:
            acc += spec["probabilities"].get(name, 0)
            if r < acc:
                break
        else:
            return None
        process = self.rng.random() < spec["process_probability"]
        if name == "call_error":
            return ("call_error", {"code": self.rng.choice(spec["codes"]), "description": "Injected fault",
                                   "details": {}})
        if name == "delay":
            low, high = spec["delay_seconds"]
            return ("delay", {"seconds": self.rng.uniform(low, high)})
        if name == "no_answer":
            return ("no_answer", {"process": process})
        if name == "drop":
            return ("drop", {"process": process, "close_code": None,
                             "refuse_seconds": spec["refuse_seconds"], "refuse_status": 503})
        return ("malformed", {"malformation": self.rng.choice(MALFORMATIONS[:-1])})


class ChargerFaults:
    def __init__(self, charger_id, clock):
        self.charger_id = charger_id
        self.clock = clock
        self.rules = []
        self.random = None
        self.refuse_until = 0.0
        self.refuse_status = 503
        self.injected = {}

    def add(self, spec):
        kind = spec["kind"]
        if kind == "random":
            self.random = RandomFaults(spec, self.charger_id)
        elif kind == "refuse_reconnect":
            self.refuse(spec["seconds"], spec["status"])
        else:
            rule = dict(spec)
            rule["remaining"] = rule.pop("count")
            self.rules.append(rule)

    def refuse(self, seconds, status):
        self.refuse_until = max(self.refuse_until, self.clock() + seconds)
        self.refuse_status = status

    def refusing(self):
        """(status, retry_after seconds) while handshakes are refused, else None."""
        left = self.refuse_until - self.clock()
        if left <= 0:
            return None
        return self.refuse_status, max(1, int(left + 0.999))

    def take(self, action):
        """The fault for the next CALL of `action`: (kind, params) or None."""
        for rule in self.rules:
            if rule["action"] in ("*", action):
                rule["remaining"] -= 1
                if rule["remaining"] <= 0:
                    self.rules.remove(rule)
                return self.count(rule["kind"], rule)
        if self.random is not None:
            decision = self.random.draw(action)
            if decision is not None:
                return self.count(decision[0], decision[1])
        return None

    def count(self, kind, params):
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind, params

    def snapshot(self):
        refusing = self.refusing()
        return {
            "rules": [{k: v for k, v in r.items()} for r in self.rules],
            "random": None if self.random is None else self.random.spec,
            "refusing": None if refusing is None else {"status": refusing[0], "retry_after": refusing[1]},
            "injected": dict(self.injected),
        }

    def clear(self):
        self.rules = []
        self.random = None
        self.refuse_until = 0.0


class FaultRegistry:
    """Faults of every charger, and a random mode for chargers without their own."""

    def __init__(self, default_random=None, clock=time.monotonic):
        self.clock = clock
        self.default_random = parse(dict(default_random, kind="random")) if default_random else None
        self._chargers = {}

    def of(self, charger_id):
        faults = self._chargers.get(charger_id)
        if faults is None:
            faults = self._chargers[charger_id] = ChargerFaults(charger_id, self.clock)
            if self.default_random is not None:
                faults.random = RandomFaults(self.default_random, charger_id)
        return faults

    def set_default_random(self, spec):
        self.default_random = spec
        for faults in self._chargers.values():
            faults.random = None if spec is None else RandomFaults(spec, faults.charger_id)

    def refusing(self, charger_id):
        faults = self._chargers.get(charger_id)
        return None if faults is None else faults.refusing()
