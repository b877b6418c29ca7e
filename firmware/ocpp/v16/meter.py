# Building sampledValue lists (C16 §7.44 SampledValue) from a meter reading.
#
# A reading is a dict: measurand (optionally ".<phase>") -> number, e.g.
# {"Energy.Active.Import.Register": 1234.5, "Power.Active.Import": 7000,
#  "Current.Import.L1": 10.1, "Voltage.L1": 230.2}. Energy is in Wh.
UNITS = {
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Register": "Wh",
    "Power.Active.Import": "W",
    "Power.Active.Export": "W",
    "Power.Offered": "W",
    "Current.Import": "A",
    "Current.Export": "A",
    "Current.Offered": "A",
    "Voltage": "V",
    "Temperature": "Celsius",
    "SoC": "Percent",
}
ENERGY = "Energy.Active.Import.Register"


def _fmt(v):
    if type(v) is int:
        return str(v)
    return "%.1f" % v if abs(v) >= 100 else "%.2f" % v


def _sample(measurand, phase, value, context):
    sv = {"value": _fmt(value), "context": context, "measurand": measurand}
    unit = UNITS.get(measurand)
    if unit is not None:
        sv["unit"] = unit
    if phase is not None:
        sv["phase"] = phase
    return sv


def _split(item):
    # "Voltage.L1" -> ("Voltage", "L1"); "Energy.Active.Import.Register" -> (it, None)
    if item in UNITS or item == "Frequency":
        return item, None
    i = item.rfind(".")
    if i > 0 and (item[:i] in UNITS or item[:i] == "Frequency"):
        return item[:i], item[i + 1 :]
    return item, None


def sampled_values(reading, items, context):
    """sampledValue list for the configured items the reading can fill.

    An item without a phase that the meter only reports per phase yields one
    value per phase (C16 §9.1.13 lets a charger report every phase).
    """
    out = []
    for item in items:
        v = reading.get(item)
        if v is not None:
            measurand, phase = _split(item)
            out.append(_sample(measurand, phase, v, context))
            continue
        prefix = item + "."
        keys = [k for k in reading if k.startswith(prefix)]
        keys.sort()
        for k in keys:
            out.append(_sample(item, k[len(prefix) :], reading[k], context))
    return out


def energy_wh(reading):
    v = reading.get(ENERGY) if reading else None
    return None if v is None else int(v + 0.5)
