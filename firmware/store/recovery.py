# Boot recovery: what to do with the transactions the journal says were open
# when the agent stopped (power cut, crash, watchdog).
#
# A transaction whose charging session the hardware no longer has is closed
# with reason PowerLoss (C16 §7.36: "complete loss of power"; pass "Reboot" when
# the agent knows it restarted without losing power) and meterStop = the last
# persisted meter checkpoint, with that checkpoint's time as the Stop
# timestamp; the meterStart and start time if no checkpoint was written. The
# checkpoint is as stale as the interval at which the agent writes it (one per
# MeterValueSampleInterval sample, so at most that interval plus the moment of
# the cut): energy delivered after it is not billed.
#
# A transaction whose session the hardware says is still going (the
# controller restarted, the contactor stayed closed, the EV is still plugged)
# is resumed: it keeps its local and CSMS ids and carries on.
from firmware.compat import const

RESUME = const(1)  # (RESUME, local_tx, connector)
STOP = const(2)  # (STOP, local_tx, connector, reason, meter_stop, time, id_tag)


def recover(state, session_alive, reason="PowerLoss"):
    """Actions for every open transaction in state, oldest first.

    session_alive(connector) -> bool: does the hardware still run that session?
    """
    out = []
    for local in sorted(state.open):
        connector, id_tag, meter_start, start_time, last_wh, last_time = state.open[local]
        if session_alive(connector):
            out.append((RESUME, local, connector))
        elif last_wh is None:
            out.append((STOP, local, connector, reason, meter_start, start_time, id_tag))
        else:
            out.append((STOP, local, connector, reason, last_wh, last_time, id_tag))
    return out
