# Connector (socket-outlet) lock with a position feedback switch.
#
# Two actuator kinds:
#   motor     a DC motor or bistable solenoid driven through an H-bridge:
#             lock_pin high for pulse_ms locks, unlock_pin high unlocks.
#   hold      a monostable actuator: lock_pin held high keeps it locked
#             (unlock_pin=None).
# After each command the feedback must read the target position within
# verify_ms (counted from the command); otherwise the command is repeated
# `retries` times, then F_LOCK_FAILED or F_UNLOCK_FAILED is set. While
# nothing moves, a locked connector whose feedback reads unlocked for
# verify_ms (forced open) is F_LOCK_FAILED. lock()/unlock() clear a previous
# lock fault (the caller is trying again).
from firmware.compat import ticks_diff, ticks_ms
from firmware.hw import EV_FAULT, EV_LOCKED, EV_UNLOCKED, F_LOCK_FAILED, F_UNLOCK_FAILED, persisted


class ConnectorLock:
    def __init__(
        self,
        lock_pin,
        unlock_pin=None,
        feedback=None,
        pulse_ms=300,
        verify_ms=1000,
        retries=1,
        locked_level=1,
        ticks=ticks_ms,
    ):
        self.lock_pin = lock_pin
        self.unlock_pin = unlock_pin
        self.feedback = feedback
        self.pulse_ms = pulse_ms
        self.verify_ms = verify_ms
        self.retries = retries
        self.locked_level = locked_level
        self._ticks = ticks
        self.target = 0  # 1 = locked
        self.pending = False
        self.fault = None
        self._since = 0
        self._tries = 0
        self._driving = False
        self._mismatch = None
        lock_pin.value(0)
        if unlock_pin is not None:
            unlock_pin.value(0)

    def is_locked(self):
        """What the feedback says now (the target if there is no feedback)."""
        if self.feedback is None:
            return self.target
        return 1 if self.feedback.value() == self.locked_level else 0

    def lock(self):
        self._command(1)

    def unlock(self):
        self._command(0)

    def _command(self, locked):
        self.target = locked
        self.fault = None
        self._tries = self.retries + 1
        self._mismatch = None
        self._start()

    def _start(self):
        self._tries -= 1
        self.pending = True
        self._since = self._ticks()
        if self.unlock_pin is None:
            self.lock_pin.value(self.target)  # hold type: level is the command
            return
        self._driving = True
        if self.target:
            self.unlock_pin.value(0)
            self.lock_pin.value(1)
        else:
            self.lock_pin.value(0)
            self.unlock_pin.value(1)

    def _stop_drive(self):
        if self._driving:
            self._driving = False
            self.lock_pin.value(0)
            self.unlock_pin.value(0)

    def poll(self):
        """Returns None, EV_LOCKED/EV_UNLOCKED when a command is confirmed,
        or EV_FAULT when `fault` was just set."""
        now = self._ticks()
        if self.pending:
            elapsed = ticks_diff(now, self._since)
            if self._driving and elapsed >= self.pulse_ms:
                self._stop_drive()
            if self._driving:
                return None  # let the motor run its full pulse
            if self.is_locked() == self.target:
                self.pending = False
                return EV_LOCKED if self.target else EV_UNLOCKED
            if elapsed < self.verify_ms:
                return None
            if self._tries > 0:
                self._start()
                return None
            self.pending = False
            self.fault = F_LOCK_FAILED if self.target else F_UNLOCK_FAILED
            return EV_FAULT
        agree = self.fault is not None or self.is_locked() == self.target
        if not persisted(self, agree, now, self.verify_ms):
            return None
        self.fault = F_LOCK_FAILED if self.target else F_UNLOCK_FAILED
        return EV_FAULT
