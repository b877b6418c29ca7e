# The records the journal holds, and the compact form of OCPP payloads in them.
#
# A record is a CBOR list whose first item is its kind:
#   K_QUEUED    [1, seq, action, payload, local_tx, attempts]
#                 action: index into ACTIONS or the action name;
#                 payload: bytes, the packed payload (pack_payload);
#                 local_tx: local transaction id or None; attempts: failed tries
#   K_DELIVERED [2, seq]            answered with a CALLRESULT: out of the queue
#   K_TX_OPEN   [3, local_tx, connector, id_tag, meter_start_wh, start_time]
#   K_TX_ID     [4, local_tx, transaction_id]   the CSMS's id (-1: Start given up)
#   K_METER     [5, local_tx, wh, time]          meter checkpoint
#   K_TX_CLOSE  [6, local_tx]
#   K_AVAIL     [7, connector, operative]        bool; connector 0 = charge point
#   K_CONFIG    [8, key, value]                  value None = back to default
#   K_PARKED    [9, seq]        given up after its last attempt; kept for export
#   K_SENT      [10, seq]       a try went on the wire (written without sync)
#   K_ATTEMPT   [11, seq, attempts, maybe]       a try failed: CALLERROR (maybe
#                 False) or timeout (maybe True: the CSMS may have it)
#   K_DROPPED   [12, seq]       dropped by the size bound (MeterValues only)
#   K_COUNTERS  [13, next_seq, next_local_tx]    written first by compaction
#   K_RELEASED  [14, seq]       a parked message exported and released
#   K_AUTH      [15, id_tag, entry]  authorization cache entry (None: forget
#                 it; id_tag None: clear the cache). entry = [status,
#                 expiry_ms or None, parent_id_tag or None, last_use]
# (kind 0 is the journal's own K_BATCH). Times are what the agent passes in
# (integer UTC epoch seconds recommended). New kinds get new numbers; these
# tables only ever grow, because journals written today are read tomorrow.
from firmware import compat
from firmware.compat import const
from firmware.store import cbor

K_QUEUED = const(1)
K_DELIVERED = const(2)
K_TX_OPEN = const(3)
K_TX_ID = const(4)
K_METER = const(5)
K_TX_CLOSE = const(6)
K_AVAIL = const(7)
K_CONFIG = const(8)
K_PARKED = const(9)
K_SENT = const(10)
K_ATTEMPT = const(11)
K_DROPPED = const(12)
K_COUNTERS = const(13)
K_RELEASED = const(14)
K_AUTH = const(15)

KIND_NAMES = (
    "batch",
    "queued",
    "delivered",
    "tx_open",
    "tx_id",
    "meter",
    "tx_close",
    "availability",
    "config",
    "parked",
    "sent",
    "attempt_failed",
    "dropped",
    "counters",
    "released",
    "auth_cache",
)

ACTIONS = (
    "StartTransaction",
    "StopTransaction",
    "MeterValues",
    "SecurityEventNotification",
    "TransactionEvent",
    "DataTransfer",
)
START = "StartTransaction"
STOP = "StopTransaction"
METER_VALUES = "MeterValues"

# Field names of transaction messages (1.6 and 2.0.1) stored as small ints.
KEYS = (
    "connectorId",
    "transactionId",
    "meterValue",
    "timestamp",
    "sampledValue",
    "value",
    "context",
    "format",
    "measurand",
    "phase",
    "location",
    "unit",
    "idTag",
    "meterStart",
    "meterStop",
    "reservationId",
    "reason",
    "transactionData",
    "type",
    "techInfo",
    "eventType",
    "triggerReason",
    "seqNo",
    "offline",
    "numberOfPhasesUsed",
    "cableMaxCurrent",
    "transactionInfo",
    "idToken",
    "evse",
    "chargingState",
    "timeSpentCharging",
    "stoppedReason",
    "remoteStartId",
    "id",
    "additionalInfo",
    "signedMeterValue",
    "unitOfMeasure",
    "multiplier",
    "signedMeterData",
    "signingMethod",
    "encodingMethod",
    "publicKey",
    "customData",
    "vendorId",
)

# Fields whose values come from enumerations; their strings are stored as
# indexes into VALUES. Any other value under these fields is wrapped in a
# one-item list, so every payload comes back exactly as it went in.
ENUM_KEYS = (
    "context",
    "format",
    "measurand",
    "phase",
    "location",
    "unit",
    "reason",
    "type",
    "eventType",
    "triggerReason",
    "chargingState",
    "stoppedReason",
)

VALUES = (
    # Measurand (1.6 §7.31; 2.0.1 MeasurandEnumType)
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Active.Import.Interval",
    "Energy.Active.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Energy.Reactive.Export.Interval",
    "Energy.Active.Net",
    "Energy.Apparent.Net",
    "Power.Active.Import",
    "Power.Active.Export",
    "Power.Reactive.Import",
    "Power.Reactive.Export",
    "Power.Offered",
    "Power.Factor",
    "Current.Import",
    "Current.Export",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Temperature",
    "SoC",
    "RPM",
    # ReadingContext
    "Sample.Periodic",
    "Sample.Clock",
    "Transaction.Begin",
    "Transaction.End",
    "Interruption.Begin",
    "Interruption.End",
    "Trigger",
    "Other",
    # ValueFormat
    "Raw",
    "SignedData",
    # Phase
    "L1",
    "L2",
    "L3",
    "N",
    "L1-N",
    "L2-N",
    "L3-N",
    "L1-L2",
    "L2-L3",
    "L3-L1",
    # Location
    "Outlet",
    "Inlet",
    "Body",
    "Cable",
    "EV",
    # UnitOfMeasure ("Celcius" is how 1.6 spells it)
    "Wh",
    "kWh",
    "varh",
    "kvarh",
    "W",
    "kW",
    "VA",
    "kVA",
    "var",
    "kvar",
    "A",
    "V",
    "K",
    "Celcius",
    "Celsius",
    "Fahrenheit",
    "Percent",
    # Stop reasons (1.6 §7.36; 2.0.1 ReasonEnumType)
    "Local",
    "Remote",
    "EVDisconnected",
    "PowerLoss",
    "Reboot",
    "HardReset",
    "SoftReset",
    "DeAuthorized",
    "EmergencyStop",
    "UnlockCommand",
    "EnergyLimitReached",
    "GroundFault",
    "ImmediateReset",
    "LocalOutOfCredit",
    "MasterPass",
    "OvercurrentFault",
    "PowerQuality",
    "SOCLimitReached",
    "StoppedByEV",
    "TimeLimitReached",
    "Timeout",
    # 2.0.1 TransactionEvent
    "Started",
    "Updated",
    "Ended",
    "Authorized",
    "CablePluggedIn",
    "ChargingRateChanged",
    "ChargingStateChanged",
    "Deauthorized",
    "EVCommunicationLost",
    "EVConnectTimeout",
    "MeterValueClock",
    "MeterValuePeriodic",
    "StopAuthorized",
    "EVDeparted",
    "EVDetected",
    "RemoteStop",
    "RemoteStart",
    "AbnormalCondition",
    "SignedDataReceived",
    "ResetCommand",
    "Charging",
    "EVConnected",
    "SuspendedEV",
    "SuspendedEVSE",
    "Idle",
    # IdTokenEnumType
    "Central",
    "eMAID",
    "ISO14443",
    "ISO15693",
    "KeyCode",
    "MacAddress",
    "NoAuthorization",
    # Critical security events (1.6 security whitepaper §8)
    "FirmwareUpdated",
    "SettingSystemTime",
    "StartupOfTheDevice",
    "ResetOrReboot",
    "SecurityLogWasCleared",
    "MemoryExhaustion",
    "TamperDetectionActivated",
)


def _index(table, item):
    # Position of item in a table, or None. A scan, not an index dict: the
    # tables stay in flash when the module is frozen, and packing happens
    # once per queued message.
    return table.index(item) if item in table else None


if compat.FAST_SETS:
    # CPython (host fleets pack thousands of payloads a second): dicts.
    _KEY_CODES = dict((k, i) for i, k in enumerate(KEYS))
    _VALUE_CODES = dict((v, i) for i, v in enumerate(VALUES))
    _ENUM_KEYS = frozenset(ENUM_KEYS)

    _key_code = _KEY_CODES.get
    _value_code = _VALUE_CODES.get

else:
    _ENUM_KEYS = ENUM_KEYS

    def _key_code(k):
        return _index(KEYS, k)

    def _value_code(v):
        return _index(VALUES, v)


def action_code(action):
    code = _index(ACTIONS, action)
    return action if code is None else code


def action_name(code):
    if compat.is_int(code):
        if 0 <= code < len(ACTIONS):
            return ACTIONS[code]
        raise cbor.CBORError("unknown action code %d" % code)
    return code


def pack_payload(payload):
    """The compact CBOR bytes of a JSON-like payload (dicts with str keys)."""
    out = bytearray()
    _pack(out, payload, 0)
    return bytes(out)


def _pack(out, obj, depth):
    t = type(obj)
    if t is dict:
        if depth >= cbor.MAX_DEPTH:
            raise cbor.CBORError("nesting deeper than %d" % cbor.MAX_DEPTH)
        n = len(obj)
        if n < 24:
            out.append(0xA0 | n)
        else:
            cbor.head(out, 5, n)
        for k in obj:
            if type(k) is not str:
                raise ValueError("payload keys must be strings")
            ik = _key_code(k)
            if ik is None:
                cbor.dump_into(out, k)
            elif ik < 24:
                out.append(ik)
            else:
                cbor.head(out, 0, ik)
            v = obj[k]
            tv = type(v)
            if k in _ENUM_KEYS:
                iv = _value_code(v) if tv is str else None
                if iv is not None:
                    if iv < 24:
                        out.append(iv)
                    else:
                        cbor.head(out, 0, iv)
                elif tv is str:
                    cbor.dump_into(out, v)
                else:
                    out.append(0x81)  # a one-item list: "not an interned string"
                    _pack(out, v, depth + 1)
            elif tv is str:
                # The common leaves written here, as cbor writes them, without
                # two calls per value.
                b = v.encode()
                n = len(b)
                if n < 24:
                    out.append(0x60 | n)
                else:
                    cbor.head(out, 3, n)
                out.extend(b)
            elif tv is int and 0 <= v < 24:
                out.append(v)
            else:
                _pack(out, v, depth + 1)
    elif t is list or t is tuple:
        if depth >= cbor.MAX_DEPTH:
            raise cbor.CBORError("nesting deeper than %d" % cbor.MAX_DEPTH)
        n = len(obj)
        if n < 24:
            out.append(0x80 | n)
        else:
            cbor.head(out, 4, n)
        for v in obj:
            _pack(out, v, depth + 1)
    else:
        cbor.dump_into(out, obj)


def unpack_payload(data):
    """The payload packed by pack_payload. Raises CBORError on bad data."""
    return unintern(cbor.loads(data))


def unintern(obj):
    """A decoded packed payload with field and value codes turned back into names."""
    t = type(obj)
    if t is dict:
        out = {}
        for k in obj:
            v = obj[k]
            if type(k) is int:
                if not 0 <= k < len(KEYS):
                    raise cbor.CBORError("unknown field code %d" % k)
                k = KEYS[k]
            if k in _ENUM_KEYS:
                tv = type(v)
                if tv is int:
                    if not 0 <= v < len(VALUES):
                        raise cbor.CBORError("unknown value code %d" % v)
                    v = VALUES[v]
                elif tv is list and len(v) == 1:
                    v = unintern(v[0])
                elif tv is not str:
                    raise cbor.CBORError("bad value for " + k)
            else:
                v = unintern(v)
            out[k] = v
        return out
    if t is list:
        return [unintern(v) for v in obj]
    return obj
