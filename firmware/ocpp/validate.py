# Payload validation against the tables generated from the official OCPP JSON
# schemas (firmware/ocpp/schemas/v*.py, written by host_tools/codegen_schemas.py).
#
# check(node, payload) -> None when valid, else (key, where): key is an E_*
# constant of firmware.ocpp.errors, where a short text such as
# "meterValue[0].sampledValue[1].unit: not in enum". Nothing is allocated on
# the valid path; error text is built only when a payload is refused.
#
# Node encoding (ints, strings, tuples and one dict per object node; chosen
# so that the common nodes cost no heap at all: small ints are not objects on
# MicroPython, and tuples of two fill one GC block on 32-bit ports):
#   int >= 0      a type with no further constraint:
#                 0 any value, 1 string, 2 integer, 3 boolean, 4 object,
#                 5 array, 6 number, 7 date-time string, 8 null
#   int < 0       a string of at most -n characters (maxLength n)
#   (str, ...)    a string enum: the tuple of allowed values
#   (required, optional)     object with additionalProperties false: two
#                            dicts {name: node}, the required properties
#                            and the others
#   (required, optional, 0)  object that allows other properties
#   (1, min_len, max_len, dt)    string; max_len -1 = unbounded; dt 1 = date-time
#   (2, lo, hi, mult)            integer; lo/hi/mult None when absent
#   (6, lo, hi, mult)            number; the same
#   (5, items, min_items, max_items)  array; max_items -1 = unbounded
#
# Error classes (OCPP-J 1.6 §4.2.3 Table 7; OCPP 2.0.1 Part 4 §4.3 Table 8):
#   wrong JSON type                          E_TYPE
#   enum, min/maxLength, minimum/maximum,
#   multipleOf, malformed date-time          E_PROPERTY
#   missing required, min/maxItems           E_OCCURRENCE
#   property not allowed, root not an object E_FORMAT
#
# JSON types are exact: a boolean is not an integer, an integer is not a
# string, and 1.0 is a number but not an integer (JSON Schema draft 4 §3.5:
# "integer: a JSON number without a fraction or exponent part").
from firmware.compat import FAST_SETS, const
from firmware.ocpp.errors import E_FORMAT, E_OCCURRENCE, E_PROPERTY, E_TYPE

ANY = const(0)
STRING = const(1)
INTEGER = const(2)
BOOLEAN = const(3)
OBJECT = const(4)
ARRAY = const(5)
NUMBER = const(6)
DATETIME = const(7)
NULL = const(8)

# Python type of the bare kinds 1..4, checked with `type(v) is`.
_PYT = (None, str, int, bool, dict)

_TYPE_ERRORS = (
    None,
    (E_TYPE, ": not a string"),
    (E_TYPE, ": not an integer"),
    (E_TYPE, ": not a boolean"),
    (E_TYPE, ": not an object"),
    (E_TYPE, ": not an array"),
    (E_TYPE, ": not a number"),
    (E_TYPE, ": not a string"),
    (E_TYPE, ": not null"),
)
_NOT_OBJECT = (E_FORMAT, "payload: not an object")
_BAD_DATETIME = (E_PROPERTY, ": not an RFC 3339 date-time")
_NOT_IN_ENUM = (E_PROPERTY, ": not in enum")

_DIGIT = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9}
# Days per month; February is checked against the year separately.
_DIM = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# 0.0 on double-precision floats, a few ulps on single-precision ports (ESP32),
# whose float parsing is not exact enough for an equality test.
_EPS = 0.0 if 1.0 + 2.0**-40 != 1.0 else 3e-7


def check(node, value):
    """None if value satisfies node, else (E_* key, where)."""
    if type(value) is not dict:
        return _NOT_OBJECT
    if type(node) is tuple and type(node[0]) is dict:
        r = _obj(node, value)
    else:
        r = _val(node, value)
    if r is not None and (r[1][0] == ":" or r[1][0] == "["):
        return (r[0], "payload" + r[1])
    return r


def _join(head, r):
    w = r[1]
    if w[0] == ":" or w[0] == "[":
        return (r[0], head + w)
    return (r[0], head + "." + w)


def _obj(n, value):
    req = n[0]
    opt = n[1]
    pyt = _PYT
    found = 0
    for k in value:  # items() would allocate a tuple per pair on MicroPython
        v = value[k]
        sub = opt.get(k)
        if sub is None:
            sub = req.get(k)
            if sub is None:
                if len(n) == 2:
                    return _obj_error(n, value)
                continue
            found += 1
        # Fast paths for the common leaves; anything else (and every
        # failure) goes through _val, which also writes the error.
        if type(sub) is int:
            if sub < 0:
                if type(v) is str and len(v) <= -sub:
                    continue
            elif sub < 5:
                if sub == 0 or type(v) is pyt[sub]:
                    continue
            elif sub == DATETIME:
                if type(v) is str and datetime_ok(v):
                    continue
        elif type(v) is str:
            # Only an enum holds strings at its top level, so a string found
            # in a tuple node is an allowed enum value.
            if v in sub:
                continue
        elif type(v) is list and type(sub) is tuple and sub[0] == ARRAY:
            if _arr(sub, v) is None:
                continue
            return _obj_error(n, value)
        if _val(sub, v) is not None:
            return _obj_error(n, value)
    if found < len(req):
        return _obj_error(n, value)
    return None


def _obj_error(n, value):
    """The error of a refused object, the same on every runtime.

    Dict order differs between MicroPython and CPython, so when a payload has
    several faults the fast loop may meet any of them first. This slow path
    looks again in a fixed order: properties by name, then missing ones.
    """
    req = n[0]
    opt = n[1]
    for k in sorted(value, key=str):
        sub = opt.get(k)
        if sub is None:
            sub = req.get(k)
        if sub is None:
            if len(n) == 2:
                return (E_FORMAT, str(k) + ": not allowed")
            continue
        r = _val(sub, value[k])
        if r is not None:
            return _join(k, r)
    for k in sorted(req):
        if k not in value:
            return (E_OCCURRENCE, k + ": missing")
    return None


def _arr(n, value):
    c = len(value)
    if c < n[2]:
        return (E_OCCURRENCE, ": fewer than %d items" % n[2])
    if n[3] >= 0 and c > n[3]:
        return (E_OCCURRENCE, ": more than %d items" % n[3])
    items = n[1]
    if type(items) is tuple and type(items[0]) is dict:
        for x in value:
            if type(x) is not dict or _obj(items, x) is not None:
                break
        else:
            return None
    elif items == ANY:
        return None
    else:
        for x in value:
            if _val(items, x) is not None:
                break
        else:
            return None
    # Slow path, only for a refused array: find the item again to name it.
    i = 0
    for x in value:
        r = _val(items, x)
        if r is not None:
            return _join("[%d]" % i, r)
        i += 1
    return None


def _val(n, v):
    t = type(v)
    if type(n) is int:
        if n < 0:
            if t is not str:
                return _TYPE_ERRORS[STRING]
            return None if len(v) <= -n else (E_PROPERTY, ": longer than %d" % -n)
        if n == ANY:
            return None
        if n < 5:
            return None if t is _PYT[n] else _TYPE_ERRORS[n]
        if n == ARRAY:
            return None if (t is list or t is tuple) else _TYPE_ERRORS[n]
        if n == NUMBER:
            return None if _is_number(v, t) else _TYPE_ERRORS[n]
        if n == DATETIME:
            if t is not str:
                return _TYPE_ERRORS[n]
            return None if datetime_ok(v) else _BAD_DATETIME
        return None if v is None else _TYPE_ERRORS[NULL]
    if type(n) is not tuple or type(n[0]) is str:  # enum: tuple or frozenset
        if t is not str:
            return _TYPE_ERRORS[STRING]
        return None if v in n else _NOT_IN_ENUM
    k = n[0]
    if type(k) is dict:
        return _obj(n, v) if t is dict else _TYPE_ERRORS[OBJECT]
    if k == ARRAY:
        return _arr(n, v) if (t is list or t is tuple) else _TYPE_ERRORS[k]
    if k == STRING:
        if t is not str:
            return _TYPE_ERRORS[k]
        c = len(v)
        if c < n[1]:
            return (E_PROPERTY, ": shorter than %d" % n[1])
        if n[2] >= 0 and c > n[2]:
            return (E_PROPERTY, ": longer than %d" % n[2])
        if n[3] and not datetime_ok(v):
            return _BAD_DATETIME
        return None
    # INTEGER or NUMBER with bounds
    if k == INTEGER:
        if t is not int:
            return _TYPE_ERRORS[k]
    elif not _is_number(v, t):
        return _TYPE_ERRORS[k]
    b = n[1]
    if b is not None and v < b:
        return (E_PROPERTY, ": below minimum " + str(b))
    b = n[2]
    if b is not None and v > b:
        return (E_PROPERTY, ": above maximum " + str(b))
    b = n[3]
    if b is not None and not multiple_ok(v, b):
        return (E_PROPERTY, ": not a multiple of " + str(b))
    return None


def prepare(actions):
    """Ready a table's ACTIONS for fast checking; schemas.load() calls it.

    On CPython enum tuples become frozensets (hashed membership, 20-35 %
    faster on MeterValues); on MicroPython tuples stay (smaller) and this
    does nothing. Shared nodes stay shared. Idempotent.
    """
    if not FAST_SETS:
        return
    memo = {}
    for action in actions:
        req, resp = actions[action]
        actions[action] = (_fast(req, memo), None if resp is None else _fast(resp, memo))


def _fast(n, memo):
    if type(n) is not tuple:
        return n
    done = memo.get(id(n))
    if done is not None:
        return done[1]
    k = n[0]
    if type(k) is str:
        out = frozenset(n)
    elif type(k) is dict:
        for d in (n[0], n[1]):
            if id(d) not in memo:
                memo[id(d)] = (d, d)
                for name in d:
                    d[name] = _fast(d[name], memo)
        out = n
    elif k == ARRAY:
        out = (k, _fast(n[1], memo), n[2], n[3])
    else:
        out = n
    memo[id(n)] = (n, out)  # keeps n alive so its id is not reused
    return out


def _is_number(v, t):
    # JSON has no NaN or Infinity (RFC 8259 §6): v - v is 0.0 only if finite.
    return t is int or (t is float and v - v == 0.0)


def multiple_ok(v, m):
    """True if the finite number v is a multiple of m.

    Judged on the decimal value the number is written as, not on the binary
    float: 21.4 is a multiple of 0.1 even though 21.4 / 0.1 is not an integer
    in binary floating point; 0.30000000000000004 is not. For m < 1 the
    generated tables only hold m = 1/k with k an integer (0.1 in OCPP 1.6).
    """
    if m >= 1:
        return v % m == 0
    if v >= 4503599627370496.0 or v <= -4503599627370496.0:
        return True  # beyond 2**52 every float is an integer
    k = round(1 / m)
    q = round(v * k) / k  # correctly rounded: the float written as "<q>/k" in decimal
    return v == q or abs(v - q) <= abs(v) * _EPS


def datetime_ok(s):
    """RFC 3339 §5.6 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm).

    T and Z may be lower case (ABNF literals are case-insensitive, RFC 3339
    §5.6 note). Ranges are checked per §5.7: month 01-12, day within the
    month (29 February only in leap years), hour 00-23, minute 00-59, second
    00-60 (60 for a leap second), offset hour 00-23 and minute 00-59.
    """
    n = len(s)
    if n < 20 or s[4] != "-" or s[7] != "-" or s[13] != ":" or s[16] != ":":
        return False
    c = s[10]
    if c != "T" and c != "t":
        return False
    d = _DIGIT
    try:  # a KeyError is a character that is not an ASCII digit
        y = d[s[0]] * 1000 + d[s[1]] * 100 + d[s[2]] * 10 + d[s[3]]
        mo = d[s[5]] * 10 + d[s[6]]
        da = d[s[8]] * 10 + d[s[9]]
        h = d[s[11]] * 10 + d[s[12]]
        mi = d[s[14]] * 10 + d[s[15]]
        se = d[s[17]] * 10 + d[s[18]]
    except KeyError:
        return False
    if mo < 1 or mo > 12 or da < 1 or da > _DIM[mo] or h > 23 or mi > 59 or se > 60:
        return False
    if mo == 2 and da == 29 and (y % 4 or (y % 100 == 0 and y % 400)):
        return False
    i = 19
    c = s[i]
    if c == ".":
        i += 1
        j = i
        while i < n and s[i] in d:
            i += 1
        if i == j or i == n:
            return False
        c = s[i]
    if c == "Z" or c == "z":
        return i + 1 == n
    if (c != "+" and c != "-") or n != i + 6 or s[i + 3] != ":":
        return False
    try:
        h = d[s[i + 1]] * 10 + d[s[i + 2]]
        mi = d[s[i + 4]] * 10 + d[s[i + 5]]
    except KeyError:
        return False
    return h <= 23 and mi <= 59
