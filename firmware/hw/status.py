# What the drivers' facts mean in OCPP words. The drivers themselves know
# nothing of OCPP; the agent asks this module.
#
# FAULTS: fault -> (OCPP 1.6 ChargePointErrorCode (C16 §7.6), faulted).
#   faulted True:  the connector goes Faulted and no session may start until
#                  the fault clears (StatusNotification status Faulted).
#   faulted False: the error code is reported with the connector's normal
#                  status (C16 §4.9: an error code with a status other than
#                  Faulted is a warning) and the affected action fails.
from firmware.hw import (
    F_CLOSE_FAILED,
    F_DROPOUT,
    F_LOCK_FAILED,
    F_METER_LOST,
    F_PILOT_DIODE,
    F_PILOT_SHORT,
    F_PILOT_STUCK,
    F_READER_FAILED,
    F_UNLOCK_FAILED,
    F_WELD,
)

FAULTS = {
    # welded contacts: the EV cannot be isolated; nothing may start (C16 §7.6
    # PowerSwitchFailure "failure to control power switch")
    F_WELD: ("PowerSwitchFailure", True),
    # the session that asked for the close does not start; the next may try
    F_CLOSE_FAILED: ("PowerSwitchFailure", False),
    # contactor fell open while charging: the session is suspended/stopped
    F_DROPOUT: ("PowerSwitchFailure", False),
    # no meter, no billing: no new sessions until it answers again
    F_METER_LOST: ("PowerMeterFailure", True),
    # a socket that cannot lock must not be energised
    F_LOCK_FAILED: ("ConnectorLockFailure", True),
    # UnlockConnector answers UnlockFailed; the connector keeps its status
    F_UNLOCK_FAILED: ("ConnectorLockFailure", False),
    # remote starts still work; cards do not
    F_READER_FAILED: ("ReaderFailure", False),
    # C16 §7.6: EVCommunicationError is "not a real error ... it should go to
    # the SuspendedEVSE state" (and §4.9 allows it only with Preparing,
    # SuspendedEV, SuspendedEVSE, Finishing)
    F_PILOT_DIODE: ("EVCommunicationError", False),
    # state E: CP shorted to PE (IEC 61851-1 Annex A: supply must not be on)
    F_PILOT_SHORT: ("OtherError", True),
    # our own CP driver reads -12 V without being told to
    F_PILOT_STUCK: ("InternalError", True),
}


def error_code(fault):
    """OCPP 1.6 errorCode for a fault (None -> "NoError")."""
    if fault is None:
        return "NoError"
    return FAULTS[fault][0]


def is_faulted(fault):
    return fault is not None and FAULTS[fault][1]


# Connector status (OCPP 1.6, C16 §4.9 / §7.7) from the pilot state and the
# session, as a table: (pilot state, session, offering) -> status, where
#   session   0 none, 1 running, 2 stopped but the EV is still plugged
#   offering  the EVSE offers energy now (PWM on and contactor allowed)
# Faulted (a fault with faulted True, pilot E/F) and Unavailable/Reserved are
# decided by the agent before this table is asked.
_PLUGGED = {
    (0, 0): "Preparing",
    (0, 1): "Preparing",
    (1, 0): "SuspendedEVSE",
    (1, 1): None,  # by pilot state: B SuspendedEV, C/D Charging
    (2, 0): "Finishing",
    (2, 1): "Finishing",
}


def connector_status(pilot_state, session, offering):
    """pilot_state one of "ABCDEF"; returns an OCPP 1.6 status string."""
    if pilot_state == "E" or pilot_state == "F":
        return "Faulted"
    if pilot_state == "A":
        # unplugged: a running session is the agent's to stop
        # (StopTransactionOnEVSideDisconnect); meanwhile SuspendedEV
        return "SuspendedEV" if session == 1 else "Available"
    status = _PLUGGED[(session, 1 if offering else 0)]
    if status is None:
        status = "SuspendedEV" if pilot_state == "B" else "Charging"
    return status


# OCPP 2.0.1 ConnectorStatusEnumType has five values (P2 §2 StatusNotification)
STATUS_201 = {
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
