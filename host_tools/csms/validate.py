"""Field checks for JSON request bodies; failures become 400 with field_errors."""

REQUIRED = "This field is required."


class Invalid(Exception):
    def __init__(self, field_errors):
        Exception.__init__(self, "Error on fields: " + ", ".join(sorted(field_errors)))
        self.field_errors = field_errors


_TYPES = {
    "str": (lambda v: isinstance(v, str), "Must be a string."),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "Must be an integer."),
    "number": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "Must be a number."),
    "bool": (lambda v: isinstance(v, bool), "Must be true or false."),
    "dict": (lambda v: isinstance(v, dict), "Must be an object."),
    "list": (lambda v: isinstance(v, list), "Must be an array."),
    "any": (lambda v: True, ""),
}


def field(kind, required=False, default=None, choices=None, check=None):
    """One field: JSON kind, required or default, allowed values, or a check
    function returning an error message (or None)."""
    return (kind, required, default, choices, check)


def check(body, spec, where=""):
    """The checked fields of `body` (a dict) with defaults filled in; raises
    Invalid with every problem at once. Unknown fields are errors too."""
    errors = {}
    out = {}
    if not isinstance(body, dict):
        raise Invalid({where or "body": ["Must be a JSON object."]})
    for name in body:
        if name not in spec:
            errors.setdefault(where + name, []).append("Unknown field.")
    for name, (kind, required, default, choices, fn) in spec.items():
        if name not in body or body[name] is None:
            if required:
                errors.setdefault(where + name, []).append(REQUIRED)
            else:
                out[name] = default
            continue
        value = body[name]
        ok, message = _TYPES[kind]
        if not ok(value):
            errors.setdefault(where + name, []).append(message)
            continue
        if choices is not None and value not in choices:
            errors.setdefault(where + name, []).append(
                "Must be one of: %s." % ", ".join(str(c) for c in choices))
            continue
        if fn is not None:
            problem = fn(value)
            if problem:
                errors.setdefault(where + name, []).append(problem)
                continue
        out[name] = value
    if errors:
        raise Invalid(errors)
    return out


def positive(value):
    return None if value > 0 else "Must be greater than 0."


def non_negative(value):
    return None if value >= 0 else "Must be 0 or more."


def bounded(low, high):
    def fn(value):
        if low <= value <= high:
            return None
        return "Must be between %s and %s." % (low, high)
    return fn
