# Energy meters over Modbus RTU: register maps as data, one reading at a time.
#
# A model is a dict: name, function code, and rows
#   (measurand, phase, register, scale, decimals)
# where `register` is the 0-based protocol address of a float32 (two
# registers, high word first), `scale` turns the meter's unit into the OCPP
# unit (kWh -> Wh) and `decimals` is how the value is rounded for reporting
# (0: an int). `phase` is 0 for totals, else 1..3; PHASE_LABELS turns it into
# the OCPP 1.6 Phase value for the measurand (C16 §7.30 SampledValue.phase:
# "L1" for a current or power on L1, "L1-N" for a line-to-neutral voltage).
# Adding a meter is adding one such dict to MODELS.
from firmware.compat import const, ticks_diff, ticks_ms
from firmware.hw import EV_CLEARED, EV_FAULT, F_METER_LOST
from firmware.hw.modbus import FC_READ_INPUT, MAX_REGISTERS, ModbusError, decode_f32

# OCPP 1.6 Measurand values (C16 §7.31) and their units (UnitOfMeasure,
# C16 §7.45). Frequency has no UnitOfMeasure in 1.6 and "Hertz" is not in the
# official JSON schema; the errata says Frequency is in Hertz, so its unit is
# None and the agent leaves `unit` out.
ENERGY_IMPORT = "Energy.Active.Import.Register"
ENERGY_EXPORT = "Energy.Active.Export.Register"
POWER_IMPORT = "Power.Active.Import"
CURRENT_IMPORT = "Current.Import"
VOLTAGE = "Voltage"
FREQUENCY = "Frequency"

UNITS = {
    ENERGY_IMPORT: "Wh",
    ENERGY_EXPORT: "Wh",
    POWER_IMPORT: "W",
    CURRENT_IMPORT: "A",
    VOLTAGE: "V",
    FREQUENCY: None,
}

# phase -> label, per measurand kind: voltages are measured line to neutral.
PHASE_LABELS = (None, "L1", "L2", "L3")
VOLTAGE_PHASE_LABELS = (None, "L1-N", "L2-N", "L3-N")

# Eastron SDM630 Modbus V2 (three-phase), input registers (function 0x04).
SDM630 = {
    "name": "SDM630",
    "fc": FC_READ_INPUT,
    "phases": 3,
    "rows": (
        (VOLTAGE, 1, 0x0000, 1, 1),
        (VOLTAGE, 2, 0x0002, 1, 1),
        (VOLTAGE, 3, 0x0004, 1, 1),
        (CURRENT_IMPORT, 1, 0x0006, 1, 2),
        (CURRENT_IMPORT, 2, 0x0008, 1, 2),
        (CURRENT_IMPORT, 3, 0x000A, 1, 2),
        (POWER_IMPORT, 1, 0x000C, 1, 1),
        (POWER_IMPORT, 2, 0x000E, 1, 1),
        (POWER_IMPORT, 3, 0x0010, 1, 1),
        (POWER_IMPORT, 0, 0x0034, 1, 1),  # total system power
        (FREQUENCY, 0, 0x0046, 1, 2),
        (ENERGY_IMPORT, 0, 0x0048, 1000, 0),  # kWh
        (ENERGY_EXPORT, 0, 0x004A, 1000, 0),  # kWh
    ),
}

# Eastron SDM120 Modbus (single-phase), input registers (function 0x04).
SDM120 = {
    "name": "SDM120",
    "fc": FC_READ_INPUT,
    "phases": 1,
    "rows": (
        (VOLTAGE, 1, 0x0000, 1, 1),
        (CURRENT_IMPORT, 1, 0x0006, 1, 2),
        (POWER_IMPORT, 0, 0x000C, 1, 1),
        (FREQUENCY, 0, 0x0046, 1, 2),
        (ENERGY_IMPORT, 0, 0x0048, 1000, 0),  # kWh
        (ENERGY_EXPORT, 0, 0x004A, 1000, 0),  # kWh
    ),
}

MODELS = {"SDM630": SDM630, "SDM120": SDM120}

# Two requests cost about 20 characters plus the slave's turnaround more than
# one; reading a hole of 16 registers costs 32. Merge holes up to this size.
MERGE_GAP = const(16)


def phase_label(measurand, phase):
    if measurand == VOLTAGE:
        return VOLTAGE_PHASE_LABELS[phase]
    return PHASE_LABELS[phase]


def plan_blocks(rows, max_gap=MERGE_GAP, max_regs=MAX_REGISTERS):
    """Group rows (sorted by register) into reads: (start, count, i0, i1)
    covering rows[i0:i1]."""
    blocks = []
    i0 = 0
    for i in range(1, len(rows) + 1):
        if i < len(rows):
            start = rows[i0][2]
            end = rows[i - 1][2] + 2
            reg = rows[i][2]
            if reg - end <= max_gap and reg + 2 - start <= max_regs:
                continue
        start = rows[i0][2]
        blocks.append((start, rows[i - 1][2] + 2 - start, i0, i))
        i0 = i
    return blocks


def select_rows(model, phases):
    """The model's rows for a meter wired with `phases` phases, by register."""
    rows = [r for r in model["rows"] if r[1] <= phases]
    rows.sort(key=lambda r: r[2])
    return tuple(rows)


class Meter:
    """A Modbus energy meter read by `await update()`.

    master     a modbus.ModbusMaster on the meter's line
    model      a dict from MODELS (or your own)
    unit       the meter's Modbus address
    phases     how many phases are wired and reported (1..model["phases"])
    stale_ms   a reading older than this is not handed out
    fail_limit consecutive failed updates before the fault F_METER_LOST
    """

    def __init__(self, master, model, unit=1, phases=None, stale_ms=15000, fail_limit=3, ticks=ticks_ms):
        self.master = master
        self.model = model
        self.unit = unit
        if phases is None or phases > model["phases"]:
            phases = model["phases"]
        self.phases = phases
        self.stale_ms = stale_ms
        self.fail_limit = fail_limit
        self._ticks = ticks
        self.rows = select_rows(model, phases)
        self.blocks = plan_blocks(self.rows)
        self.values = [0.0] * len(self.rows)
        self._scratch = [0.0] * len(self.rows)
        self.taken = None  # ticks of the last good reading
        self.fault = None
        self.failures = 0
        self.last_error = None

    async def update(self):
        """Read every block once. Returns None, EV_FAULT (the meter is now
        lost) or EV_CLEARED (it answers again). A reading is all-or-nothing:
        the previous one stays until a complete new one replaces it."""
        rows = self.rows
        scratch = self._scratch
        fc = self.model["fc"]
        try:
            for start, count, i0, i1 in self.blocks:
                regs = await self.master.read(self.unit, fc, start, count)
                for i in range(i0, i1):
                    row = rows[i]
                    v = decode_f32(regs, 2 * (row[2] - start))
                    d = v - v  # NaN for NaN and for infinities
                    if d != d:
                        raise ModbusError("register %d is not a number" % row[2])
                    scratch[i] = v * row[3]
        except (ModbusError, OSError) as e:  # OSError: the port itself failed
            return self._failed(e)
        self._scratch = self.values
        self.values = scratch
        self.taken = self._ticks()
        self.failures = 0
        if self.fault is not None:
            self.fault = None
            return EV_CLEARED
        return None

    def _failed(self, err):
        self.failures += 1
        self.last_error = err
        if self.failures >= self.fail_limit and self.fault is None:
            self.fault = F_METER_LOST
            return EV_FAULT
        return None

    def age_ms(self):
        """Age of the current reading in ms, or None if there is none."""
        if self.taken is None:
            return None
        return ticks_diff(self._ticks(), self.taken)

    def fresh(self):
        age = self.age_ms()
        return age is not None and age <= self.stale_ms

    def value(self, measurand, phase=0):
        """The fresh value of one measurand (phase 0 = total), rounded as the
        table says, or None (stale, never read, or not in this meter)."""
        if not self.fresh():
            return None
        rows = self.rows
        for i in range(len(rows)):
            row = rows[i]
            if row[0] == measurand and row[1] == phase:
                return _rounded(self.values[i], row[4])
        return None

    def energy_wh(self):
        return self.value(ENERGY_IMPORT)

    def sampled(self, measurands=None):
        """Yield (measurand, phase_label, unit, value) for a fresh reading,
        only the given measurands if a collection is passed. Nothing if the
        reading is stale: a stale value is never sent as a fresh one."""
        if not self.fresh():
            return
        rows = self.rows
        for i in range(len(rows)):
            row = rows[i]
            m = row[0]
            if measurands is not None and m not in measurands:
                continue
            yield (m, phase_label(m, row[1]), UNITS[m], _rounded(self.values[i], row[4]))


def _rounded(v, decimals):
    if decimals == 0:
        return int(v + 0.5) if v >= 0 else -int(-v + 0.5)
    return round(v, decimals)
