# Run by tests/integration/test_validator_micropython.py under the micropython
# binary, cwd = a tree holding firmware/ (source or .mpy). Prints one JSON line
# with the heap each part keeps after gc.collect() (gc.mem_alloc deltas).
# argv: the versions to load, in order (default: all three).
import gc
import json
import sys

sys.path.insert(0, ".")

gc.collect()
start = gc.mem_alloc()
from firmware.ocpp import validate  # noqa: E402 (validator, errors, compat)
from firmware.ocpp import schemas  # noqa: E402

gc.collect()
out = {"validator": gc.mem_alloc() - start}
versions = sys.argv[1:] or ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]
payload = {
    "connectorId": 1,
    "transactionId": 42,
    "meterValue": [
        {
            "timestamp": "2024-05-01T12:34:56Z",
            "sampledValue": [
                {"value": "1234.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "16.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
            ],
        }
    ],
}
for version in versions:
    gc.collect()
    before = gc.mem_alloc()
    table = schemas.load(version)
    gc.collect()
    out[version] = gc.mem_alloc() - before
    if version == "ocpp1.6":
        out["others_loaded"] = [n for n in ("v201", "v21") if "firmware.ocpp.schemas." + n in sys.modules]
        out["meter_values_valid"] = validate.check(table.ACTIONS["MeterValues"][0], payload) is None
        out["bad_unit"] = list(validate.check(table.ACTIONS["MeterValues"][0], {"connectorId": "1", "meterValue": []}))
    table = None
gc.collect()
out["free"] = gc.mem_free()
print(json.dumps(out))
