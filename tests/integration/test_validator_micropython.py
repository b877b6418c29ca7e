"""Heap cost of the validation tables under the real MicroPython binary.

Figures are gc.mem_alloc() deltas after gc.collect() on the unix port, which
is a 64-bit build: pointers and GC blocks are twice the size they are on a
32-bit charger (ESP32, RP2040), so a device needs roughly 0.55-0.6x these.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.support import micropython_binary, repo_root

SCRIPT = os.path.join(repo_root(), "tests", "integration", "mp", "schema_heap.py")
MODULES = ("firmware/__init__.py", "firmware/compat.py", "firmware/bufops.py", "firmware/ocpp/__init__.py", "firmware/ocpp/errors.py",
           "firmware/ocpp/validate.py", "firmware/ocpp/schemas/__init__.py", "firmware/ocpp/schemas/v16.py",
           "firmware/ocpp/schemas/v201.py", "firmware/ocpp/schemas/v21.py")


def run(cwd, *args, heap="4M"):
    proc = subprocess.run([micropython_binary(), "-X", "heapsize=" + heap, SCRIPT] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_heap_of_source_tables():
    out = run(repo_root())
    print("\nMicroPython (unix, 64-bit), import from source, bytes kept: validator %d, "
          "v16 %d, v201 %d, v21 %d" % (out["validator"], out["ocpp1.6"], out["ocpp2.0.1"], out["ocpp2.1"]))
    assert out["others_loaded"] == []  # a 1.6 charger never loads the 2.x tables
    assert out["meter_values_valid"] is True
    assert out["bad_unit"] == [8, "connectorId: not an integer"]
    assert out["ocpp1.6"] <= 32 * 1024  # ~16 KiB on a 32-bit port
    assert out["ocpp2.0.1"] <= 80 * 1024


def test_1_6_validation_fits_a_96_kib_heap():
    out = run(repo_root(), "ocpp1.6", heap="96K")
    print("\n96 KiB heap, validator + 1.6 table loaded: %d bytes still free" % out["free"])
    assert out["meter_values_valid"] is True
    assert out["free"] > 32 * 1024


def test_heap_of_mpy_tables(tmp_path):
    mpy_cross = shutil.which("mpy-cross", path=os.path.dirname(micropython_binary()))
    if mpy_cross is None:
        pytest.skip("mpy-cross not installed")
    for rel in MODULES:
        dst = tmp_path / rel.replace(".py", ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([mpy_cross, "-o", str(dst), rel], cwd=repo_root(), check=True)
    out = run(str(tmp_path))
    print("\nMicroPython, import from .mpy, bytes kept: validator %d, v16 %d, v201 %d, v21 %d"
          % (out["validator"], out["ocpp1.6"], out["ocpp2.0.1"], out["ocpp2.1"]))
    assert out["meter_values_valid"] is True
