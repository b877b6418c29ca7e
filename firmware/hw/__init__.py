# Hardware drivers. Each module drives one device from a bus or pins it is
# given (machine.UART/Pin on MicroPython, pyserial or a Linux GPIO backend on
# Linux, simulated objects on a host); none imports `machine` or `serial`, and
# none knows OCPP (status.py alone maps driver facts to OCPP words).
#
# Every driver offers the same small surface to the agent:
#   poll()  -> None, or one event string from the list below; cheap, never
#              blocks, call it every loop turn (10-100 ms). The meter is the
#              exception: its I/O is `await meter.update()`.
#   fault   -> None, or one fault string below; it changes only inside
#              poll()/update(), which then return EV_FAULT (or EV_CLEARED).
# Timeouts use the wrapping ticks of firmware.compat (ticks_ms/ticks_diff);
# each driver takes `ticks=` so tests drive it with a fake clock.

from firmware.compat import ticks_diff

# Events returned by poll(). Plain interned strings: no allocation, and
# they read well in console JSON lines.
EV_CLOSED = "closed"  # relay: feedback confirmed closed
EV_OPENED = "opened"  # relay: feedback confirmed open
EV_LOCKED = "locked"  # lock: feedback confirmed locked
EV_UNLOCKED = "unlocked"  # lock: feedback confirmed unlocked
EV_FAULT = "fault"  # any driver: `fault` was just set (or changed)
EV_CLEARED = "cleared"  # any driver: `fault` just went back to None

# Faults. status.FAULTS maps each to an OCPP error code and a severity.
F_WELD = "weld"  # relay feedback closed while commanded open
F_CLOSE_FAILED = "close_failed"  # relay feedback never closed after close()
F_DROPOUT = "dropout"  # relay feedback opened while commanded closed
F_METER_LOST = "meter_lost"  # meter stopped answering
F_LOCK_FAILED = "lock_failed"  # lock did not reach locked
F_UNLOCK_FAILED = "unlock_failed"  # lock did not reach unlocked
F_READER_FAILED = "reader_failed"  # RFID reader does not answer
F_PILOT_DIODE = "pilot_diode"  # PWM negative plateau missing: no EV diode
F_PILOT_SHORT = "pilot_short"  # state E: CP shorted to PE
F_PILOT_STUCK = "pilot_stuck"  # state F read while not commanded: CP driver fault


def persisted(driver, agree, now, ms):
    """Steady-state watch shared by the relay and the lock: True once the
    feedback has disagreed with the command for `ms` (the watch then starts
    over). Keeps its start time in driver._mismatch."""
    if agree:
        driver._mismatch = None
        return False
    if driver._mismatch is None:
        driver._mismatch = now
        return False
    if ticks_diff(now, driver._mismatch) < ms:
        return False
    driver._mismatch = None
    return True
