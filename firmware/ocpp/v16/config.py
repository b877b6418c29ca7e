# OCPP 1.6 configuration keys as data (C16 §9.1 Core, §9.4 RemoteTrigger has
# none; C16E §3.80-3.91 changes; SEC16 §7 security keys).
#
# Each key: (type, access, default, low, high, flags)
#   type   T_INT / T_BOOL / T_CSL (comma separated list) / T_STR
#   access A_R read-only, A_RW read-write, A_W write-only (never read back)
#   low/high  bounds for T_INT; for T_CSL, high = maximum number of items
#   flags  F_REBOOT: a change is applied after a reboot (RebootRequired);
#          F_RAISE: the value may only go up (SecurityProfile, SEC16 §7.6)
# ChangeConfiguration answers (C16 §5.3, §7.22): Accepted = applied now;
# RebootRequired = applied after a reboot the charger will not start itself;
# NotSupported = unknown key; Rejected = read-only key or a bad value, with the
# reason returned for the log.
from firmware.compat import const

T_INT = const(0)
T_BOOL = const(1)
T_CSL = const(2)
T_STR = const(3)

A_R = const(0)
A_RW = const(1)
A_W = const(2)

F_REBOOT = const(1)
F_RAISE = const(2)

DAY = const(86400)

# Measurands a charger's meter can offer (C16 §7.31), optionally with a phase
# suffix in the *Data keys ("Voltage.L1", C16 §9.1.13).
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "Power.Offered",
    "Current.Import",
    "Current.Export",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Temperature",
    "SoC",
)
PHASES = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
PHASE_ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
PROFILES = ("Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation", "SmartCharging", "RemoteTrigger")

_CSL_MAX = const(12)  # items per measurand list: what our meters can fill

KEYS = {
    # Core profile (C16 §9.1)
    "AllowOfflineTxForUnknownId": (T_BOOL, A_RW, False, 0, 0, 0),
    "AuthorizationCacheEnabled": (T_BOOL, A_RW, True, 0, 0, 0),
    "AuthorizeRemoteTxRequests": (T_BOOL, A_RW, True, 0, 0, 0),
    "ClockAlignedDataInterval": (T_INT, A_RW, 900, 0, DAY, 0),
    "ConnectionTimeOut": (T_INT, A_RW, 60, 1, 3600, 0),
    "ConnectorPhaseRotation": (T_CSL, A_RW, "0.Unknown", 0, 8, 0),
    "ConnectorPhaseRotationMaxLength": (T_INT, A_R, 8, 0, 0, 0),
    "GetConfigurationMaxKeys": (T_INT, A_R, 64, 0, 0, 0),
    "HeartbeatInterval": (T_INT, A_RW, 300, 0, DAY, 0),
    "LocalAuthorizeOffline": (T_BOOL, A_RW, True, 0, 0, 0),
    "LocalPreAuthorize": (T_BOOL, A_RW, False, 0, 0, 0),
    "MeterValuesAlignedData": (T_CSL, A_RW, "Energy.Active.Import.Register", 0, _CSL_MAX, 0),
    "MeterValuesAlignedDataMaxLength": (T_INT, A_R, _CSL_MAX, 0, 0, 0),
    "MeterValuesSampledData": (T_CSL, A_RW, "Energy.Active.Import.Register,Power.Active.Import", 0, _CSL_MAX, 0),
    "MeterValuesSampledDataMaxLength": (T_INT, A_R, _CSL_MAX, 0, 0, 0),
    "MeterValueSampleInterval": (T_INT, A_RW, 60, 0, DAY, 0),
    "MessageTimeout": (T_INT, A_RW, 30, 1, 600, 0),  # C16E §3.83
    "NumberOfConnectors": (T_INT, A_R, 1, 0, 0, 0),
    "ResetRetries": (T_INT, A_RW, 1, 0, 10, 0),
    "StopTransactionOnEVSideDisconnect": (T_BOOL, A_RW, True, 0, 0, 0),
    "StopTransactionOnInvalidId": (T_BOOL, A_RW, True, 0, 0, 0),
    "StopTransactionMaxMeterValues": (T_INT, A_R, 16, 0, 0, 0),  # C16E §3.91
    "StopTxnAlignedData": (T_CSL, A_RW, "", 0, _CSL_MAX, 0),
    "StopTxnAlignedDataMaxLength": (T_INT, A_R, _CSL_MAX, 0, 0, 0),
    "StopTxnSampledData": (T_CSL, A_RW, "", 0, _CSL_MAX, 0),
    "StopTxnSampledDataMaxLength": (T_INT, A_R, _CSL_MAX, 0, 0, 0),
    "SupportedFeatureProfiles": (T_CSL, A_R, "Core,RemoteTrigger", 0, 6, 0),
    "SupportedFeatureProfilesMaxLength": (T_INT, A_R, 6, 0, 0, 0),
    "TransactionMessageAttempts": (T_INT, A_RW, 3, 1, 100, 0),
    "TransactionMessageRetryInterval": (T_INT, A_RW, 60, 0, DAY, 0),
    "UnlockConnectorOnEVSideDisconnect": (T_BOOL, A_RW, True, 0, 0, 0),
    "WebSocketPingInterval": (T_INT, A_RW, 60, 0, DAY, 0),  # 0 = no client ping; negative rejected
    # Security extension (SEC16 §7): profile only raised, key write-only.
    "AuthorizationKey": (T_STR, A_W, "", 16, 40, 0),
    "SecurityProfile": (T_INT, A_RW, 0, 0, 3, F_RAISE),
    # Vendor key: the meter model is chosen when drivers are built at boot.
    "MeterModel": (T_STR, A_RW, "SDM630", 1, 20, F_REBOOT),
}

# Values a T_CSL key accepts per item (None: free text within 50 chars).
_CSL_ITEMS = {
    "ConnectorPhaseRotation": "rotation",
    "MeterValuesAlignedData": "measurand",
    "MeterValuesSampledData": "measurand",
    "StopTxnAlignedData": "measurand",
    "StopTxnSampledData": "measurand",
    "SupportedFeatureProfiles": "profile",
}
METER_MODELS = ("SDM630", "SDM120")


def parse_int(text):
    """Strict decimal integer ("-5", "60"), or None."""
    if type(text) is not str or not text:
        return None
    body = text[1:] if text[0] == "-" else text
    if not body or len(body) > 10:
        return None
    for c in body:
        if c < "0" or c > "9":
            return None
    return int(text)


def parse_bool(text):
    t = text.lower() if type(text) is str else None
    if t == "true":
        return True
    if t == "false":
        return False
    return None


def _measurand_ok(item):
    if item in MEASURANDS:
        return True
    i = item.rfind(".")
    while i > 0:
        if item[:i] in MEASURANDS and item[i + 1 :] in PHASES:
            return True
        i = item.rfind(".", 0, i)
    return False


def _rotation_ok(item):
    i = item.find(".")
    return i > 0 and parse_int(item[:i]) is not None and item[i + 1 :] in PHASE_ROTATIONS


_ITEM_CHECKS = {
    "measurand": _measurand_ok,
    "rotation": _rotation_ok,
    "profile": lambda item: item in PROFILES,
}


def split_csl(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def to_text(spec, value):
    t = spec[0]
    if t == T_BOOL:
        return "true" if value else "false"
    if t == T_INT:
        return str(value)
    return value


class Config:
    """The configuration of one charge point: defaults, board values, changes.

    values holds typed values (int, bool, str); CSL keys are kept as text and
    split when read with get_list().
    """

    def __init__(self, overrides=None, connectors=1, extra_keys=None):
        self.keys = KEYS
        if extra_keys:
            self.keys = dict(KEYS)
            self.keys.update(extra_keys)
        self.values = {}
        for k in self.keys:
            self.values[k] = self.keys[k][2]
        self.values["NumberOfConnectors"] = connectors
        if overrides:
            for k in overrides:
                self.values[k] = overrides[k]

    def get(self, key):
        return self.values[key]

    def get_list(self, key):
        return split_csl(self.values[key])

    def text(self, key):
        return to_text(self.keys[key], self.values[key])

    def parse(self, key, text):
        """(typed value, None) if text is acceptable for key, else (None, reason)."""
        spec = self.keys[key]
        t = spec[0]
        if type(text) is not str:
            return None, "value must be a string"
        if t == T_BOOL:
            v = parse_bool(text)
            return (v, None) if v is not None else (None, "not true/false")
        if t == T_INT:
            v = parse_int(text)
            if v is None:
                return None, "not an integer"
            if v < spec[3] or v > spec[4]:
                return None, "outside %d..%d" % (spec[3], spec[4])
            if spec[5] & F_RAISE and v < self.values[key]:
                return None, "may only be raised"
            return v, None
        if t == T_CSL:
            items = split_csl(text)
            if len(items) > spec[4]:
                return None, "more than %d items" % spec[4]
            check = _ITEM_CHECKS.get(_CSL_ITEMS.get(key))
            for item in items:
                if check is not None and not check(item):
                    return None, "unsupported item " + item
            return ",".join(items), None
        if key == "AuthorizationKey":
            return _check_authorization_key(text)
        if key == "MeterModel" and text not in METER_MODELS:
            return None, "unknown meter model"
        if len(text) < spec[3] or len(text) > spec[4]:
            return None, "length outside %d..%d" % (spec[3], spec[4])
        return text, None

    def change(self, key, text):
        """ChangeConfiguration: (status, typed value or None, reason or None).

        The caller persists and applies an Accepted/RebootRequired change.
        """
        spec = self.keys.get(key)
        if spec is None:
            return "NotSupported", None, "unknown key"
        if spec[1] == A_R:
            return "Rejected", None, "read-only key"
        value, reason = self.parse(key, text)
        if reason is not None:
            return "Rejected", None, reason
        self.values[key] = value
        return ("RebootRequired" if spec[5] & F_REBOOT else "Accepted"), value, None

    def load(self, key, value):
        """Restore a persisted change (already validated when it was made)."""
        if key in self.keys:
            self.values[key] = value

    def listing(self, wanted=None):
        """GetConfiguration (C16 §5.8): (configurationKey list, unknownKey list).

        A write-only key is listed without its value (J16 §6.2.2: the
        AuthorizationKey is never read back).
        """
        names = wanted if wanted else sorted(self.keys)
        known = []
        unknown = []
        for k in names:
            spec = self.keys.get(k)
            if spec is None:
                unknown.append(k)
                continue
            entry = {"key": k, "readonly": spec[1] == A_R}
            if spec[1] != A_W:
                entry["value"] = to_text(spec, self.values[k])
            known.append(entry)
        return known, unknown


def _check_authorization_key(text):
    # SEC16 A00.FR.204/205, §7.2: 16 to 20 bytes, set as 32 to 40 hex digits.
    # CSMSs in the field also set 16-40 printable characters (the 2.0.1
    # BasicAuthPassword rule, P2 A00.FR.205); both are accepted, and the
    # transport's key encoding setting decides how it goes on the wire.
    n = len(text)
    if n < 16 or n > 40:
        return None, "must be 16 to 40 characters (32 to 40 hex digits)"
    for c in text:
        if c < "!" or c > "~":
            return None, "must be printable ASCII without spaces"
    return text, None
