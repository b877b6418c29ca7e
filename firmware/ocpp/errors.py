# CALLERROR codes, spelled exactly as each version's RPC specification does.
#
# Code works with version-neutral keys (E_*); only the wire spells them.
# OCPP-J 1.6 §4.2.3 Table 7 (the errata keeps its typos "FormationViolation"
# and "OccurenceConstraintViolation", J16E §5.1, §5.2); OCPP 2.0.1 Part 4
# §4.3 Table 8; OCPP 2.1 Part 4 §4.3 Table 9 (same list as 2.0.1).
from firmware.compat import const

V16 = "ocpp1.6"
V201 = "ocpp2.0.1"
V21 = "ocpp2.1"
VERSIONS = (V16, V201, V21)

E_NOT_IMPLEMENTED = const(0)  # action unknown to the receiver
E_NOT_SUPPORTED = const(1)  # action known, not supported
E_INTERNAL = const(2)  # the receiver failed (a handler raised)
E_PROTOCOL = const(3)  # payload incomplete / RPC rules broken
E_SECURITY = const(4)
E_FORMAT = const(5)  # payload or PDU syntactically wrong
E_PROPERTY = const(6)  # a field holds a value out of its constraints
E_OCCURRENCE = const(7)  # a field missing, or too few/many items
E_TYPE = const(8)  # a field has the wrong JSON type
E_GENERIC = const(9)
E_MESSAGE_TYPE = const(10)  # unknown message type number (2.0.1+)
E_RPC_FRAMEWORK = const(11)  # not a valid RPC frame, id unreadable (2.0.1+)

_COMMON = (
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
)

# Index = key. 1.6 has no MessageTypeNotSupported or RpcFrameworkError: a frame
# that is not a valid RPC frame there is "not conform the PDU structure", which
# Table 7 calls FormationViolation. An unknown message type is ignored in 1.6
# (J16 §4.1.3), so its slot is never sent; it reads GenericError for safety.
CODES = {
    V16: _COMMON
    + (
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
        "GenericError",
        "FormationViolation",
    ),
    V201: _COMMON
    + (
        "FormatViolation",
        "PropertyConstraintViolation",
        "OccurrenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
        "MessageTypeNotSupported",
        "RpcFrameworkError",
    ),
}
CODES[V21] = CODES[V201]

MAX_DESCRIPTION = const(255)  # string[255] in 2.0.1/2.1 (P4 Table 7); kept for 1.6 too


def code(version, key):
    return CODES[version][key]


# Spellings peers send that are not their version's: read them, never write them.
_ALIASES = {
    "OccurenceConstraintViolation": E_OCCURRENCE,
    "OccurrenceConstraintViolation": E_OCCURRENCE,
    "FormationViolation": E_FORMAT,
    "FormatViolation": E_FORMAT,
}


def key_of(version, text):
    """The E_* key of a received error code string, or E_GENERIC if unknown."""
    codes = CODES[version]
    for i in range(len(codes)):
        if codes[i] == text:
            return i
    return _ALIASES.get(text, E_GENERIC)


class OcppError(Exception):
    """Raised by handlers and the validator; becomes a CALLERROR.

    key: an E_* constant; description: short human text; details: dict or None.
    """

    def __init__(self, key, description="", details=None):
        super().__init__(description)
        self.key = key
        self.description = description
        self.details = details
