"""Pieces both OCPP versions' handlers share: authorization from the id tag
list and flattening of meter values."""
import datetime

ENERGY = "Energy.Active.Import.Register"  # default measurand, 1.6 §7.31 and 2.0.1 SampledValueType


def _expired(expiry):
    if not expiry:
        return False
    try:
        when = datetime.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when < datetime.datetime.now(datetime.timezone.utc)


# Authorization statuses per version (1.6 §7.2 AuthorizationStatus; 2.0.1
# AuthorizationStatusEnumType). A status the charger's version lacks reads Invalid.
STATUSES_16 = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
STATUSES_201 = STATUSES_16 + ("NoCredit", "NotAllowedTypeEVSE", "NotAtThisLocation", "NotAtThisTime", "Unknown")


def authorize(storage, charger, id_tag, v16=True):
    """(status, parent_id_tag, expiry_date) of an id tag for this charger.

    The charger's own list first, then the list of '*'; an expiry date in the
    past gives Expired; an unknown tag is Accepted when the charger
    authorizes unknown tags, else Invalid (1.6) or Unknown (2.0.1)."""
    row = storage.find_id_tag(charger["id"], id_tag)
    if row is None:
        if charger["authorize_unknown"]:
            return "Accepted", None, None
        return ("Invalid" if v16 else "Unknown"), None, None
    status = row["status"]
    if status == "Accepted" and _expired(row["expiry_date"]):
        status = "Expired"
    if status not in (STATUSES_16 if v16 else STATUSES_201):
        status = "Invalid"
    return status, row["parent_id_tag"], row["expiry_date"]


def flatten_meter_values(meter_values):
    """One row per sampled value: timestamp, value, measurand, phase, unit,
    multiplier, context, location, format, signed (2.0.1 signedMeterValue)."""
    rows = []
    for mv in meter_values or ():
        ts = mv.get("timestamp")
        for sv in mv.get("sampledValue") or ():
            unit = sv.get("unit")
            multiplier = None
            uom = sv.get("unitOfMeasure")
            if isinstance(uom, dict):
                unit = uom.get("unit", "Wh")
                multiplier = uom.get("multiplier", 0)
            signed = sv.get("signedMeterValue")
            rows.append({
                "timestamp": ts,
                "value": sv.get("value"),
                "measurand": sv.get("measurand"),
                "phase": sv.get("phase"),
                "unit": unit,
                "multiplier": multiplier,
                "context": sv.get("context"),
                "location": sv.get("location"),
                "format": sv.get("format"),
                "signed": None if signed is None else str(signed),
            })
    return rows


def energy_wh(rows, context=None):
    """The last Energy.Active.Import.Register reading (in Wh) among rows, or
    None; only rows with `context` when given. Phase-less readings only."""
    found = None
    for r in rows:
        if (r["measurand"] or ENERGY) != ENERGY or r["phase"]:
            continue
        if context is not None and r["context"] != context:
            continue
        try:
            value = float(r["value"])
        except (TypeError, ValueError):
            continue  # SignedData or garbage: not a reading
        unit = r["unit"] or "Wh"
        if unit == "kWh":
            value *= 1000.0
        if r["multiplier"]:
            value *= 10 ** r["multiplier"]
        found = int(value) if value == int(value) else value
    return found
