# IEC 61851-1 control pilot (Annex A): the EVSE drives +12 V / PWM / -12 V
# through 1 kOhm; the EV loads it with a diode and resistors. The positive
# plateau tells the state, the negative plateau proves the EV's diode.
#
#   state  plateau  meaning
#   A      +12 V    no EV connected
#   B      +9 V     EV connected, not asking for energy
#   C      +6 V     EV asks for energy
#   D      +3 V     EV asks for energy, with ventilation
#   E      0 V      CP shorted to PE, or no supply: error
#   F      -12 V    the EVSE itself signals "not available"
#
# The standard gives each level +-1 V; between the bands we split at the
# midpoints (10.5, 7.5, 4.5, 1.5 V and -6 V) and add `hysteresis_mv` so a
# level sitting on a boundary does not flap, and a new state must be seen on
# `confirm` consecutive polls before it is reported.
#
# Current offered by PWM duty cycle (Annex A, EVSE side):
#   6 A <= I <= 51 A   duty = I / 0.6  %
#   51 A < I <= 80 A   duty = I / 2.5 + 64 %
# 100 % (constant +12 V) offers nothing (states B1/C1); 0 % is state F.
from firmware.compat import const, ticks_ms
from firmware.hw import EV_CLEARED, EV_FAULT, F_PILOT_DIODE, F_PILOT_SHORT, F_PILOT_STUCK

STATES = "ABCDEF"
# Boundaries between STATES[i] and STATES[i+1], in mV.
_BOUNDS = (10500, 7500, 4500, 1500, -6000)
DIODE_MAX_MV = const(-10000)  # the negative plateau must reach below this

DUTY_FULL = const(65535)  # duty_u16 for 100 %: constant +12 V
MIN_CURRENT_A = const(6)
MAX_CURRENT_A = const(80)


def duty_permille(amps):
    """Duty cycle in 0.1 % for an offered current in A (6..80), or None when
    the current cannot be signalled (below 6 A: offer 0 instead)."""
    if amps < MIN_CURRENT_A:
        return None
    if amps > MAX_CURRENT_A:
        amps = MAX_CURRENT_A
    if amps <= 51:
        return int(amps * 1000 / 60 + 0.5)  # amps / 0.6 %
    return int(amps * 4 + 640 + 0.5)  # (amps / 2.5 + 64) %


def current_for_duty(permille):
    """The current an EV reads from a duty cycle in 0.1 % (EV side of
    Annex A): 0 when no charging is allowed at that duty."""
    if permille < 80 or permille > 970:
        return 0  # < 8 %: digital communication / not allowed; > 97 %: none
    if permille < 100:
        return 6.0
    if permille <= 850:
        return permille * 0.06
    if permille <= 960:
        return (permille / 10 - 64) * 2.5
    return 80.0


def classify(mv, current=-1, hysteresis_mv=0):
    """Index into STATES for a positive-plateau voltage. With a current
    state index, a boundary must be crossed by hysteresis_mv to leave it."""
    if current >= 0:
        up = _BOUNDS[current - 1] + hysteresis_mv if current > 0 else None
        down = _BOUNDS[current] - hysteresis_mv if current < 5 else None
        if (up is None or mv <= up) and (down is None or mv >= down):
            return current
    i = 0
    while i < 5 and mv < _BOUNDS[i]:
        i += 1
    return i


class AdcSampler:
    """Measures both plateaus of the pilot with an ADC (read_u16()) behind
    the board's level shifter: pilot_mv = (raw - zero_raw) * mv_per_kcount
    / 1000. `samples` reads span several 1 kHz periods, so the largest is
    the positive plateau and the smallest the negative one."""

    def __init__(self, adc, zero_raw, mv_per_kcount, samples=64):
        self.adc = adc
        self.zero_raw = zero_raw
        self.mv_per_kcount = mv_per_kcount
        self.samples = samples

    def measure(self):
        read = self.adc.read_u16
        hi = 0
        lo = 65535
        for _ in range(self.samples):
            r = read()
            if r > hi:
                hi = r
            if r < lo:
                lo = r
        k = self.mv_per_kcount
        z = self.zero_raw
        return ((hi - z) * k // 1000, (lo - z) * k // 1000)


class Pilot:
    """pwm      a machine.PWM-like object: freq(hz) and duty_u16(d)
    sampler  an object whose measure() returns (positive_mv, negative_mv)
    """

    def __init__(self, pwm, sampler, hysteresis_mv=400, confirm=2, freq=1000, ticks=ticks_ms):
        self.pwm = pwm
        self.sampler = sampler
        self.hysteresis_mv = hysteresis_mv
        self.confirm = confirm
        self._ticks = ticks
        pwm.freq(freq)
        self.offered_a = 0
        self.permille = 1000
        self.unavailable = False
        self.state = "A"
        self._index = 0
        self._candidate = 0
        self._seen = 0
        self.fault = None
        self.high_mv = 0
        self.low_mv = 0
        pwm.duty_u16(DUTY_FULL)

    def set_current(self, amps):
        """Offer `amps` by PWM; below 6 A offers nothing (constant +12 V).
        Returns the current actually offered (capped at 80 A)."""
        self.unavailable = False
        p = duty_permille(amps)
        if p is None:
            self.offered_a = 0
            self.permille = 1000
            self.pwm.duty_u16(DUTY_FULL)
            return 0
        self.offered_a = amps if amps < MAX_CURRENT_A else MAX_CURRENT_A
        self.permille = p
        self.pwm.duty_u16((p * DUTY_FULL + 500) // 1000)
        return self.offered_a

    def set_unavailable(self):
        """State F: constant -12 V, no EV will charge."""
        self.unavailable = True
        self.offered_a = 0
        self.permille = 0
        self.pwm.duty_u16(0)

    def offering(self):
        return self.offered_a > 0

    def poll(self):
        """Measure once. Returns the new state letter when the state changed,
        EV_FAULT/EV_CLEARED when only the fault changed, else None. After
        any event read both `state` and `fault`."""
        hi, lo = self.sampler.measure()
        self.high_mv = hi
        self.low_mv = lo
        idx = classify(hi, self._index, self.hysteresis_mv)
        changed = False
        if idx == self._index:
            self._seen = 0
        else:
            if idx != self._candidate:
                self._candidate = idx
                self._seen = 0
            self._seen += 1
            if self._seen >= self.confirm:
                self._index = idx
                self.state = STATES[idx]
                self._seen = 0
                changed = True
        fault = self._fault_now()
        if fault != self.fault:
            self.fault = fault
            if not changed:
                return EV_FAULT if fault is not None else EV_CLEARED
        return self.state if changed else None

    def _fault_now(self):
        s = self._index
        if s == 4:
            return F_PILOT_SHORT
        if s == 5:
            return None if self.unavailable else F_PILOT_STUCK
        # Diode check: only while a PWM runs and an EV loads the line.
        if 1 <= s <= 3 and 0 < self.permille < 1000 and self.low_mv > DIODE_MAX_MV:
            return F_PILOT_DIODE
        return None
