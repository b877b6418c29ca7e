# Contactor with an auxiliary (mirror) feedback contact.
#
# Every command is verified: after close()/open() the feedback must follow
# within verify_ms, and while nothing is commanded the feedback must keep
# agreeing (a disagreement lasting verify_ms is a fault). Faults:
#   F_WELD          feedback closed while commanded open (main contacts
#                   welded). Latched: clear_fault() clears it only once the
#                   feedback reads open again; close() is refused meanwhile.
#   F_CLOSE_FAILED  feedback never closed after close(); the coil is released.
#   F_DROPOUT       feedback opened by itself while closed; the coil is
#                   released.
# close() clears F_CLOSE_FAILED/F_DROPOUT (the caller is trying again).
from firmware.compat import ticks_diff, ticks_ms
from firmware.hw import EV_CLOSED, EV_FAULT, EV_OPENED, F_CLOSE_FAILED, F_DROPOUT, F_WELD, persisted


class Contactor:
    """coil      output pin (value(v)); coil_on is the level that energises it
    feedback  input pin (value()) of the auxiliary contact, or None (then
              commands are trusted and no weld can be seen)
    closed_level  the feedback level meaning "main contacts closed"
    verify_ms how long the contacts may take to follow (operate time plus
              bounce; IEC 60947-4-1 contactors are in the 20-100 ms range)
    """

    def __init__(self, coil, feedback=None, verify_ms=300, closed_level=1, coil_on=1, ticks=ticks_ms):
        self.coil = coil
        self.feedback = feedback
        self.verify_ms = verify_ms
        self.closed_level = closed_level
        self.coil_on = coil_on
        self._ticks = ticks
        self.commanded = 0  # 1 = closed
        self.pending = False  # a command waits for its feedback
        self.fault = None
        self._since = 0
        self._mismatch = None  # ticks when a steady-state disagreement began
        self._drive(0)

    def _drive(self, closed):
        self.commanded = closed
        self.coil.value(self.coil_on if closed else 1 - self.coil_on)

    def feedback_closed(self):
        """What the auxiliary contact says now (the command if there is none)."""
        if self.feedback is None:
            return self.commanded
        return 1 if self.feedback.value() == self.closed_level else 0

    def close(self):
        """Energise the coil. Returns False (and does nothing) while welded."""
        if self.fault == F_WELD:
            return False
        self.fault = None
        self._command(1)
        return True

    def open(self):
        self._command(0)

    def _command(self, closed):
        self._drive(closed)
        self.pending = True
        self._since = self._ticks()
        self._mismatch = None

    def is_closed(self):
        """Commanded closed and confirmed by the feedback."""
        return self.commanded == 1 and not self.pending and self.fault is None

    def poll(self):
        """Returns None, EV_CLOSED/EV_OPENED when a command is confirmed, or
        EV_FAULT when `fault` was just set."""
        now = self._ticks()
        fb = self.feedback_closed()
        if self.pending:
            if fb == self.commanded:
                self.pending = False
                return EV_CLOSED if fb else EV_OPENED
            if ticks_diff(now, self._since) < self.verify_ms:
                return None
            self.pending = False
            if self.commanded:
                self._drive(0)
                return self._set(F_CLOSE_FAILED)
            return self._set(F_WELD)
        if not persisted(self, fb == self.commanded, now, self.verify_ms):
            return None
        if self.commanded:
            self._drive(0)
            return self._set(F_DROPOUT)
        if self.fault != F_WELD:
            return self._set(F_WELD)
        return None

    def _set(self, fault):
        self.fault = fault
        return EV_FAULT

    def clear_fault(self):
        """Clear a fault if the contacts now agree with the (open) command.
        Returns True when no fault remains."""
        if self.fault is None:
            return True
        if self.fault == F_WELD and self.feedback_closed():
            return False
        self.fault = None
        self._mismatch = None
        return True
