"""Our validator against the `ocpp` package's own schema validation.

For every action of OCPP 1.6 (with the security extension) and 2.0.1, request
and response, PER_SCHEMA payloads are generated from the official JSON schema
with a seeded RNG: valid ones, and mutations of valid ones at any depth (a
required field dropped, a wrong JSON type, a value out of its enum, too long,
out of range or not a multiple, a property not allowed, a malformed
date-time, too few or too many array items, a payload that is not an object).

Each payload is judged by firmware.ocpp.validate.check with the generated
tables, and by ocpp.messages._validate_payload exactly as the package does it
(Draft4Validator over the same files, Decimal parsing for its three 1.6
actions). Verdicts are compared version-neutrally: valid, or the error class.
The package maps schema failures without regard to the specification (type
and maxLength to TypeConstraintViolation, additionalProperties and everything
else to FormatViolation, required to ProtocolError; format is never checked).
Every place where we answer differently is a RULE below, with the text of the
specification that supports our answer; any other disagreement fails.
"""

import copy
import json
import os
import random

import ocpp
import pytest
from ocpp import exceptions as X
from ocpp.messages import Call, CallResult, _validate_payload

from firmware.ocpp.errors import CODES, E_FORMAT, E_OCCURRENCE, E_PROPERTY, E_PROTOCOL, E_TYPE, V16, V201
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check

PER_SCHEMA = 200  # payloads per action and direction: 400 per action

VERSIONS = (("1.6", V16, "v16", ""), ("2.0.1", V201, "v201", "Request"))

THEIR_KEY = {
    X.TypeConstraintViolationError: E_TYPE,
    X.FormatViolationError: E_FORMAT,
    X.FormationViolationError: E_FORMAT,
    X.PropertyConstraintViolationError: E_PROPERTY,
    X.OccurrenceConstraintViolationError: E_OCCURRENCE,
    X.OccurenceConstraintViolationError: E_OCCURRENCE,
    X.ProtocolError: E_PROTOCOL,
}

# (what failed, the package's class, our class) -> why ours is right.
# "what failed" is the JSON Schema keyword of the first error the package's
# validator reports, "type@root" when the payload itself is not an object, and
# "format" for a date-time only we check.
_T7 = "OCPP-J 1.6 §4.2.3 Table 7"
_T8 = "OCPP 2.0.1 Part 4 §4.3 Table 8"
RULES = {
    ("required", E_PROTOCOL, E_OCCURRENCE): (
        "A missing required field breaks the field's cardinality (1..1 in the message tables), an occurrence "
        "constraint: %s OccurenceConstraintViolation 'Payload for Action is syntactically correct but at least "
        "one of the fields violates occurence constraints'; %s OccurrenceConstraintViolation, same text. "
        "ProtocolError is 'Payload for Action is incomplete' (1.6) / 'not conform the PDU structure' (2.0.1): "
        "the message as a whole, not one field." % (_T7, _T8)
    ),
    ("minItems", E_FORMAT, E_OCCURRENCE): (
        "Too few list items breaks the list's cardinality (1..*): an occurrence constraint (%s, %s), not a "
        "syntax error." % (_T7, _T8)
    ),
    ("maxItems", E_FORMAT, E_OCCURRENCE): (
        "Too many list items breaks the list's cardinality (0..n): an occurrence constraint (%s, %s)." % (_T7, _T8)
    ),
    ("maxLength", E_TYPE, E_PROPERTY): (
        "A string longer than its bound is still a string: the JSON type is right and the value is not. %s "
        "PropertyConstraintViolation 'Payload is syntactically correct but at least one field contains an "
        "invalid value'; TypeConstraintViolation is a data type mismatch, its example being '\"somestring\": 12' "
        "(%s, same texts)." % (_T7, _T8)
    ),
    ("enum", E_FORMAT, E_PROPERTY): (
        "A value outside its enumeration is syntactically correct with an invalid value: "
        "PropertyConstraintViolation (%s, %s). FormationViolation/FormatViolation is for a payload that is "
        "syntactically incorrect." % (_T7, _T8)
    ),
    ("minimum", E_FORMAT, E_PROPERTY): "A number below its minimum is an invalid value: PropertyConstraintViolation (%s, %s)."
    % (_T7, _T8),
    ("maximum", E_FORMAT, E_PROPERTY): "A number above its maximum is an invalid value: PropertyConstraintViolation (%s, %s)."
    % (_T7, _T8),
    ("multipleOf", E_FORMAT, E_PROPERTY): (
        "A number with more decimals than allowed (multipleOf 0.1 in the 1.6 charging schedules) is an invalid "
        "value: PropertyConstraintViolation (%s)." % _T7
    ),
    ("type@root", E_TYPE, E_FORMAT): (
        "A CALL is [2, id, action, {payload}] and a CALLRESULT [3, id, {payload}] (OCPP-J 1.6 §4.2.1, §4.2.2; "
        "OCPP 2.0.1 Part 4 §4.2.1, §4.2.2): a payload that is not a JSON object breaks the syntax of the "
        "message, FormationViolation (%s) / FormatViolation (%s), not the type of a field." % (_T7, _T8)
    ),
    ("format", None, E_PROPERTY): (
        "The schemas declare \"format\": \"date-time\", which JSON Schema draft 4 (Validation §7.3.1) defines "
        "as RFC 3339 §5.6 date-time; the package never enables format checking and accepts any string. A "
        "malformed timestamp is a field with an invalid value: PropertyConstraintViolation (%s, %s)." % (_T7, _T8)
    ),
}

ALPHABET = "abcdefXYZ0189 -_.:/+éß€😀"
BAD_DATETIMES = (
    "",
    "2024-05-01",
    "2024-05-01T12:34:56",
    "2024-05-01 12:34:56Z",
    "2024-02-30T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-05-01T24:00:00Z",
    "2024-05-01T12:60:00Z",
    "2024-05-01T12:34:56+0200",
    "2024-05-01T12:34:56.Z",
    "yesterday",
    "٢٠٢٤-05-01T12:34:56Z",
)
WRONG_TYPES = {
    "string": (1, 2.5, True, None, [], {}, ["x"]),
    "integer": ("1", 1.5, 1.0, True, False, None, [], {}),
    "number": ("1.5", True, None, [], {}),
    "boolean": (0, 1, "true", None, [], {}),
    "object": ([], "x", 1, None, True, [{}]),
    "array": ({}, "x", 1, None, True),
}
NOT_OBJECTS = ([], "payload", 1, None, True, 2.5, [{}])
MUTATIONS = (
    "required",
    "type",
    "enum",
    "maxLength",
    "minimum",
    "maximum",
    "multipleOf",
    "extra",
    "datetime",
    "minItems",
    "maxItems",
    "root",
)


def schema_dir(folder):
    return os.path.join(os.path.dirname(ocpp.__file__), folder, "schemas")


def schema_pairs(folder, suffix):
    """[(action, request schema file, response schema file)] of a version."""
    d = schema_dir(folder)
    out = []
    for name in sorted(os.listdir(d)):
        base = name[:-5]
        if base.endswith("Response"):
            continue
        action = base[: -len(suffix)] if suffix else base
        out.append((action, os.path.join(d, name), os.path.join(d, action + "Response.json")))
    return out


def read_schema(path):
    with open(path, encoding="utf-8-sig") as f:
        return json.load(f)


def resolve(schema, root):
    while "$ref" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


# ---------------------------------------------------------------- generation


_TEXT = "".join(random.Random(0).choice(ALPHABET) for _ in range(8000))


def gen_string(rng, lo, hi):
    n = rng.choice((lo, hi, rng.randint(lo, hi)))
    text = _TEXT * (n // len(_TEXT) + 2)
    i = rng.randrange(len(_TEXT))
    return text[i : i + n]


def gen_datetime(rng):
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % (
        rng.randint(1970, 2099),
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
    )
    if rng.random() < 0.5:
        s += "." + str(rng.randint(0, 999999)).zfill(rng.randint(1, 6))[:6]
    r = rng.random()
    if r < 0.6:
        return s + "Z"
    return s + "%s%02d:%02d" % (rng.choice("+-"), rng.randint(0, 23), rng.choice((0, 30, 45)))


def gen_number(s, rng, integer):
    lo = s.get("minimum")
    hi = s.get("maximum")
    if "multipleOf" in s:
        k = rng.randint(-100000, 100000) if lo is None else rng.randint(int(lo * 10), int(lo * 10) + 100000)
        if rng.random() < 0.3:
            return k // 10  # an int is a multiple of 0.1 too
        return k / 10
    a = -(10**6) if lo is None else lo
    b = 10**9 if hi is None else hi
    if integer:
        a, b = int(a), int(b)
        return rng.choice((a, b, rng.randint(a, b)))
    if rng.random() < 0.3:
        return rng.randint(int(a) + 1, int(b))
    return rng.choice((float(a), float(b), rng.uniform(a, b)))


def gen(schema, root, rng, depth=0):
    s = resolve(schema, root)
    t = s.get("type")
    if t is None:
        return rng.choice((None, 1, "x", [1, "a"], {"k": [None]}, 2.5, True))
    if t == "object":
        props = s.get("properties", {})
        required = s.get("required", ())
        out = {}
        for name in sorted(props):
            if name in required or (depth < 8 and rng.random() < (0.5 if depth < 3 else 0.3)):
                out[name] = gen(props[name], root, rng, depth + 1)
        return out
    if t == "array":
        lo = s.get("minItems", 0)
        hi = min(s.get("maxItems", lo + 3), lo + (3 if depth < 3 else 1))
        n = lo if depth >= 8 else rng.randint(lo, hi)
        return [gen(s["items"], root, rng, depth + 1) for _ in range(n)]
    if t == "string":
        if "enum" in s:
            return rng.choice(s["enum"])
        if s.get("format") == "date-time":
            return gen_datetime(rng)
        return gen_string(rng, s.get("minLength", 0), min(s.get("maxLength", 30), 600))
    if t == "integer":
        return gen_number(s, rng, True)
    if t == "number":
        return gen_number(s, rng, False)
    if t == "boolean":
        return rng.random() < 0.5
    raise AssertionError("type %r" % t)


# ---------------------------------------------------------------- mutation


def sites(value, schema, root, path=()):
    """Every (path, resolved schema, value) inside a valid payload."""
    s = resolve(schema, root)
    yield path, s, value
    if s.get("type") == "object" and isinstance(value, dict):
        props = s.get("properties", {})
        for name in sorted(value):
            if name in props:
                yield from sites(value[name], props[name], root, path + (name,))
    elif s.get("type") == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            yield from sites(item, s["items"], root, path + (i,))


def applicable(kind, s, value):
    t = s.get("type")
    if kind == "required":
        return t == "object" and any(k in value for k in s.get("required", ()))
    if kind == "type":
        return t in WRONG_TYPES
    if kind == "enum":
        return "enum" in s
    if kind == "maxLength":
        return t == "string" and "maxLength" in s and "enum" not in s
    if kind in ("minimum", "maximum", "multipleOf"):
        return kind in s
    if kind == "extra":
        return t == "object"
    if kind == "datetime":
        return s.get("format") == "date-time"
    if kind == "minItems":
        return t == "array" and s.get("minItems", 0) > 0
    if kind == "maxItems":
        return t == "array" and "maxItems" in s
    return False


def mutated_value(kind, s, value, root, rng):
    if kind == "required":
        out = dict(value)
        del out[rng.choice(sorted(k for k in s["required"] if k in value))]
        return out
    if kind == "type":
        return copy.deepcopy(rng.choice(WRONG_TYPES[s["type"]]))
    if kind == "enum":
        return rng.choice(("NotAValue", value.lower() if value.lower() != value else value.upper(), value + " "))
    if kind == "maxLength":
        return gen_string(rng, s["maxLength"] + 1, s["maxLength"] + 3)
    if kind in ("minimum", "maximum"):
        bound = s[kind]
        if s["type"] == "integer":
            bound = int(bound)  # the schemas write 0.0; an int must stay an int
            step = rng.choice((1, 1000))
        else:
            step = rng.choice((1, 0.5, 1e-9, 1000))
        return bound - step if kind == "minimum" else bound + step
    if kind == "multipleOf":
        return rng.choice((4.11, 0.05, 0.30000000000000004, 21.45, -0.01, 123456.78))
    if kind == "extra":
        out = dict(value)
        out[rng.choice(("zzExtra", "Extra", "x"))] = rng.choice((1, "v", None, {}))
        return out
    if kind == "datetime":
        return rng.choice(BAD_DATETIMES)
    if kind == "minItems":
        return []
    if kind == "maxItems":
        return [gen(s["items"], root, rng, 8)] * (s["maxItems"] + 1)
    raise AssertionError(kind)


def replace(payload, path, new):
    if not path:
        return new
    out = copy.deepcopy(payload)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return out


def payloads(schema, rng):
    """PER_SCHEMA (payload, label) pairs: valid ones and mutations."""
    out = []
    while len(out) < PER_SCHEMA:
        valid = gen(schema, schema, rng)
        if len(out) % 6 == 0:
            out.append((valid, "valid"))
            continue
        if len(out) % 25 == 1:
            out.append((copy.deepcopy(rng.choice(NOT_OBJECTS)), "root"))
            continue
        all_sites = list(sites(valid, schema, schema))
        kinds = [k for k in MUTATIONS if any(applicable(k, s, v) and (p or k != "type") for p, s, v in all_sites)]
        if not kinds:  # an empty object with no properties: only extras
            kinds = ["extra"]
        kind = rng.choice(kinds)
        path, s, v = rng.choice([x for x in all_sites if applicable(kind, x[1], x[2]) and (x[0] or kind != "type")])
        out.append((replace(valid, path, mutated_value(kind, s, v, schema, rng)), kind))
    return out


# ---------------------------------------------------------------- judging


def theirs(version, action, response, payload):
    """(E_* key or None, what failed) as the ocpp package judges it."""
    msg = CallResult("1", copy.deepcopy(payload), action) if response else Call("1", action, copy.deepcopy(payload))
    try:
        _validate_payload(msg, version)
        return None, None
    except X.OCPPError as e:
        key = THEIR_KEY[type(e)]
        error = e.__context__  # the jsonschema error it was raised from
    what = error.validator
    if what == "type" and not error.path:
        what = "type@root"
    return key, what


def compare_all():
    stats = {}
    unlisted = []
    total = 0
    for version, vid, folder, suffix in VERSIONS:
        actions = load(vid).ACTIONS
        for action, req_path, resp_path in schema_pairs(folder, suffix):
            for response, path in ((False, req_path), (True, resp_path)):
                node = actions[action][1 if response else 0]
                schema = read_schema(path)
                rng = random.Random("%s/%s/%s" % (version, action, "response" if response else "request"))
                for payload, kind in payloads(schema, rng):
                    total += 1
                    ours = check(node, payload)
                    our_key = None if ours is None else ours[0]
                    their_key, what = theirs(version, action, response, payload)
                    if what is None and ours is not None and ours[1].endswith("not an RFC 3339 date-time"):
                        what = "format"
                    row = (kind, what, their_key, our_key)
                    stats[row] = stats.get(row, 0) + 1
                    if their_key != our_key and (what, their_key, our_key) not in RULES:
                        unlisted.append((version, action, "response" if response else "request", kind, payload,
                                         their_key, what, ours))
    return total, stats, unlisted


@pytest.fixture(scope="module")
def results():
    return compare_all()


def test_every_action_both_directions_at_least_200(results):
    total, stats, _ = results
    n_actions = sum(len(schema_pairs(folder, suffix)) for _, _, folder, suffix in VERSIONS)
    assert n_actions == 39 + 64
    assert total == n_actions * 2 * PER_SCHEMA


def test_no_unlisted_disagreement(results):
    _, _, unlisted = results
    lines = ["%s %s %s (%s): theirs %r on %r, ours %r; payload %s" % (v, a, d, k, t, w, o, json.dumps(p)[:300])
             for v, a, d, k, p, t, w, o in unlisted[:20]]
    assert not unlisted, "%d unlisted disagreements:\n%s" % (len(unlisted), "\n".join(lines))


def test_every_rule_is_exercised(results):
    _, stats, _ = results
    seen = {(what, t, o) for (_, what, t, o) in stats}
    assert set(RULES) <= seen, set(RULES) - seen


def test_every_mutation_is_generated_and_refused(results):
    _, stats, _ = results
    by_kind = {}
    for (kind, what, t, o), n in stats.items():
        by_kind.setdefault(kind, [0, 0])
        by_kind[kind][0] += n
        if o is not None:
            by_kind[kind][1] += n
    for kind in MUTATIONS:
        assert by_kind.get(kind, [0, 0])[1] > 0, kind
    # Valid payloads are valid for both.
    assert all(o is None and t is None for (kind, _, t, o) in stats if kind == "valid")


def test_agreements_dominate(results):
    total, stats, _ = results
    agree = sum(n for (_, _, t, o), n in stats.items() if t == o)
    name = {None: "valid"}
    name.update((i, code) for i, code in enumerate(CODES[V201]))
    valid = sum(n for (_, _, t, o), n in stats.items() if t is None and o is None)
    print("\n%d payloads; same verdict %d (both valid %d, same error class %d); different, by rule:"
          % (total, agree, valid, agree - valid))
    for row in sorted(RULES, key=str):
        n = sum(c for (_, w, t, o), c in stats.items() if (w, t, o) == row)
        print("  %-10s ocpp %-27s ours %-29s %6d" % (row[0], name[row[1]], name[row[2]], n))
    assert agree > total // 3
