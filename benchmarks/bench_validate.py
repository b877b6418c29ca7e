"""Payload validation speed: our tables and interpreter against two baselines.

For a typical MeterValues request (one meterValue, four sampledValues with
context, measurand, unit and phase) and a StartTransaction request, all
measured in the same run:

  floor       json.loads(json.dumps(frame)) of the whole CALL frame
  jsonschema  Draft4Validator.validate(payload), the validator the `ocpp`
              package builds from the same schema files (ocpp.messages)
  ocpp        ocpp.messages._validate_payload(Call), the package's own call
  ours        firmware.ocpp.validate.check(node, payload)

Ratios are throughputs: ours / floor > 1 means validating costs less than one
loads+dumps of the frame. Times are CPU time of this process, best of several
rounds. The MicroPython figures come from the `micropython` binary.
"""

import json
import os
import subprocess
import sys
import time

from firmware.ocpp.errors import V16
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check

ROUNDS = 7
TARGET_S = 0.15  # CPU time per round and figure

METER_VALUES = {
    "connectorId": 1,
    "transactionId": 42,
    "meterValue": [
        {
            "timestamp": "2024-05-01T12:34:56.789Z",
            "sampledValue": [
                {"value": "1234.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh", "phase": "L1"},
                {"value": "16.0", "context": "Sample.Periodic", "measurand": "Current.Import", "unit": "A",
                 "phase": "L1"},
                {"value": "230.1", "context": "Sample.Periodic", "measurand": "Voltage", "unit": "V",
                 "phase": "L1-N"},
                {"value": "3680", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W",
                 "phase": "L1"},
            ],
        }
    ],
}
START_TRANSACTION = {"connectorId": 1, "idTag": "04A2B3C4D5E6F7", "meterStart": 1234567,
                     "timestamp": "2024-05-01T12:34:56Z"}
CASES = (("MeterValues", METER_VALUES), ("StartTransaction", START_TRANSACTION))

MP_SCRIPT = """
import sys, time, json
sys.path.insert(0, ".")
from firmware.ocpp.schemas import load
from firmware.ocpp.validate import check
actions = load("ocpp1.6").ACTIONS
cases = json.loads(CASES)
def best(fn, n):
    b = None
    for _ in range(5):
        t = time.ticks_us()
        for _ in range(n):
            fn()
        dt = time.ticks_diff(time.ticks_us(), t)
        b = dt if b is None or dt < b else b
    return n * 1e6 / b
out = {}
for action, payload in cases:
    node = actions[action][0]
    assert check(node, payload) is None
    frame = [2, "19223201", action, payload]
    out[action] = (best(lambda: json.loads(json.dumps(frame)), 300), best(lambda: check(node, payload), 300))
print(json.dumps(out))
"""


def per_second(fn):
    """Calls per second of fn, best of ROUNDS rounds of CPU time."""
    n = 1
    while True:
        t = time.process_time()
        for _ in range(n):
            fn()
        dt = time.process_time() - t
        if dt >= TARGET_S / 4:
            break
        n *= 4
    n = max(1, int(n * TARGET_S / dt))
    best = None
    for _ in range(ROUNDS):
        t = time.process_time()
        for _ in range(n):
            fn()
        dt = time.process_time() - t
        best = dt if best is None or dt < best else best
    return n / best


def cpython_figures():
    from ocpp.messages import Call, _validate_payload, get_validator

    actions = load(V16).ACTIONS
    rows = []
    for action, payload in CASES:
        node = actions[action][0]
        frame = [2, "19223201", action, payload]
        assert check(node, payload) is None
        validator = get_validator(2, action, "1.6")
        validator.validate(payload)
        _validate_payload(Call("19223201", action, payload), "1.6")
        rows.append(
            (
                action,
                per_second(lambda: json.loads(json.dumps(frame))),
                per_second(lambda: validator.validate(payload)),
                per_second(lambda: _validate_payload(Call("19223201", action, payload), "1.6")),
                per_second(lambda: check(node, payload)),
            )
        )
    return rows


def micropython_figures():
    from tests.support import micropython_binary, repo_root

    binary = micropython_binary()
    if not binary:
        return None
    # The payloads go in the script text: this unix port build crashes on long argv.
    script = "CASES = %r\n" % json.dumps(CASES) + MP_SCRIPT
    proc = subprocess.run([binary, "-X", "heapsize=4M", "-c", script], cwd=repo_root(), capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    print("Payload validation, CPython %s (calls per second, CPU time, best of %d)"
          % (sys.version.split()[0], ROUNDS))
    print("  %-17s %12s %12s %12s %12s   %-13s %s" % ("payload", "floor", "jsonschema", "ocpp", "ours",
                                                   "ours/floor", "ours/jsonschema"))
    for action, floor, js, pkg, ours in cpython_figures():
        print("  %-17s %12.0f %12.0f %12.0f %12.0f   %6.2fx        %6.1fx"
              % (action, floor, js, pkg, ours, ours / floor, ours / js))
    print("  floor = json.loads(json.dumps(frame)); jsonschema = Draft4Validator.validate as ocpp builds it;")
    print("  ocpp = ocpp.messages._validate_payload(Call); ours = firmware.ocpp.validate.check")
    mp = micropython_figures()
    if mp is None:
        print("MicroPython: binary not found")
        return
    print("Payload validation, MicroPython unix port (calls per second, best of 5)")
    print("  %-17s %12s %12s   %s" % ("payload", "floor", "ours", "ours/floor"))
    for action, _ in CASES:
        floor, ours = mp[action]
        print("  %-17s %12.0f %12.0f   %6.2fx" % (action, floor, ours, ours / floor))


if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
