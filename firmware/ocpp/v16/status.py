# Connector status (C16 §4.9, §7.7) as data: what a connector's state means,
# and which reported transitions the specification allows.
#
# Allowed transitions for connectors > 0 (C16 §4.9 table; Preparing→Finishing
# from C16E §3.20). Faulted may return to any status: the table's "to its
# pre-fault status" is not always reachable, since a fault can end a session.
AVAILABLE = "Available"
PREPARING = "Preparing"
CHARGING = "Charging"
SUSPENDED_EV = "SuspendedEV"
SUSPENDED_EVSE = "SuspendedEVSE"
FINISHING = "Finishing"
RESERVED = "Reserved"
UNAVAILABLE = "Unavailable"
FAULTED = "Faulted"

ALLOWED = {
    AVAILABLE: (PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, RESERVED, UNAVAILABLE, FAULTED),
    PREPARING: (AVAILABLE, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, FAULTED),
    CHARGING: (AVAILABLE, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED),
    SUSPENDED_EV: (AVAILABLE, CHARGING, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED),
    SUSPENDED_EVSE: (AVAILABLE, CHARGING, SUSPENDED_EV, FINISHING, UNAVAILABLE, FAULTED),
    FINISHING: (AVAILABLE, PREPARING, UNAVAILABLE, FAULTED),
    RESERVED: (AVAILABLE, PREPARING, UNAVAILABLE, FAULTED),
    UNAVAILABLE: (AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FAULTED),
    FAULTED: (AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, RESERVED, UNAVAILABLE),
}
# Connector 0 (the whole charge point) uses only these (C16 §4.9).
CONNECTOR_ZERO = (AVAILABLE, UNAVAILABLE, FAULTED)


def allowed(old, new):
    return old is None or old == new or new in ALLOWED[old]


def derive(c):
    """The status a connector is in, from its state (a Connector object).

    Order matters: a fault beats everything; a running transaction is
    reported as Charging/Suspended even on a connector scheduled to become
    Unavailable (ChangeAvailability Scheduled, C16 §5.2); SuspendedEVSE beats
    SuspendedEV (C16 §4.9).
    """
    if c.fault is not None:
        return FAULTED
    tx = c.tx
    if tx is not None:
        if not c.plugged:
            return SUSPENDED_EV  # EV side disconnected, transaction kept (C16 §4.10)
        if not c.relay_on:
            return SUSPENDED_EVSE
        if not c.ev_drawing:
            return SUSPENDED_EV
        return CHARGING
    if not c.operative:
        return UNAVAILABLE
    if c.finishing:
        return FINISHING
    if c.plugged or (c.auth is not None and not c.auth_pending):
        # Preparing once authorized (or plugged); not while an Authorize is
        # still being asked: a refused card leaves the connector Available.
        return PREPARING
    return AVAILABLE
