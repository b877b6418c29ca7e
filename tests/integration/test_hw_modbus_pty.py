"""The Modbus RTU master and the meter driver over real pseudo-terminals,
against pymodbus' RTU server simulating an Eastron SDM630 and SDM120."""

import asyncio
import os
import subprocess
import sys
import time

import pytest
import serial

from firmware.hw import EV_CLEARED, EV_FAULT, F_METER_LOST, meters
from firmware.hw.meters import Meter
from firmware.hw.modbus import (
    ModbusCRCError,
    ModbusException,
    ModbusMaster,
    ModbusTimeout,
    decode_f32,
)
from host_tools.serial_link import FdPort, PtyLink, open_pty, read_blocking
from host_tools.sim_meter import SimMeterServer
from tests.support import micropython_binary, repo_root

SDM630_VALUES = {
    (meters.VOLTAGE, 1): 231.5,
    (meters.VOLTAGE, 2): 229.25,
    (meters.VOLTAGE, 3): 230.75,
    (meters.CURRENT_IMPORT, 1): 15.5,
    (meters.CURRENT_IMPORT, 2): 16.25,
    (meters.CURRENT_IMPORT, 3): 0.0,
    (meters.POWER_IMPORT, 1): 3588.25,
    (meters.POWER_IMPORT, 2): 3725.5,
    (meters.POWER_IMPORT, 3): 0.0,
    (meters.POWER_IMPORT, 0): 7313.75,
    (meters.FREQUENCY, 0): 49.96875,
    (meters.ENERGY_IMPORT, 0): 12345.625,  # kWh, exact in float32
    (meters.ENERGY_EXPORT, 0): 1.5,
}


def wait_until(cond, seconds=2.0):
    """For counters kept by the server's thread: they trail our reads."""
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "condition not met"
        time.sleep(0.001)


class FixedModel:
    """Meter values chosen by the test, in the meter's units."""

    def __init__(self, values):
        self.values = values

    def register_values(self, model):
        return {reg: self.values.get((m, ph), 0.0) for m, ph, reg, _, _ in model["rows"]}


@pytest.fixture
def pty_meter():
    """An SDM630 served by pymodbus on a pty slave; our master on its master fd."""
    master_fd, path, keep = open_pty()
    server = SimMeterServer(path, "SDM630", unit=1, meter_model=FixedModel(dict(SDM630_VALUES))).start()
    port = FdPort(master_fd)
    yield server, port
    server.stop()
    os.close(master_fd)
    os.close(keep)


def test_sdm630_values_through_real_frames(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, baud=9600, timeout_ms=300)
    regs = read_blocking(master, 1, 4, 0x0000, 2)
    assert decode_f32(regs, 0) == 231.5
    meter = Meter(master, meters.SDM630, unit=1)
    assert asyncio.run(meter.update()) is None
    assert server.requests == 3  # one single read, then the meter's two blocks
    got = {(m, ph): v for m, ph, unit, v in meter.sampled()}
    assert got[(meters.VOLTAGE, "L1-N")] == 231.5
    assert got[(meters.VOLTAGE, "L2-N")] == 229.2  # rounded to 0.1 V (229.25 in float32 rounds down)
    assert got[(meters.CURRENT_IMPORT, "L2")] == 16.25
    assert got[(meters.POWER_IMPORT, "L1")] == 3588.2 or got[(meters.POWER_IMPORT, "L1")] == 3588.3
    assert got[(meters.POWER_IMPORT, None)] == 7313.8
    assert got[(meters.FREQUENCY, None)] == 49.97
    assert got[(meters.ENERGY_IMPORT, None)] == 12345625  # kWh -> Wh
    assert got[(meters.ENERGY_EXPORT, None)] == 1500
    assert meter.energy_wh() == 12345625
    assert master.crc_errors == 0 and master.timeouts == 0


def test_sdm120_through_pyserial_and_a_link():
    values = {
        (meters.VOLTAGE, 1): 228.5,
        (meters.CURRENT_IMPORT, 1): 6.5,
        (meters.POWER_IMPORT, 0): 1485.25,
        (meters.FREQUENCY, 0): 50.0,
        (meters.ENERGY_IMPORT, 0): 42.125,
        (meters.ENERGY_EXPORT, 0): 0.0,
    }
    with PtyLink() as link:
        server = SimMeterServer(link.path_b, "SDM120", unit=3, meter_model=FixedModel(values)).start()
        try:
            with serial.Serial(link.path_a, 9600, timeout=0) as ser:
                master = ModbusMaster(ser, baud=9600, timeout_ms=300)
                meter = Meter(master, meters.SDM120, unit=3)
                assert asyncio.run(meter.update()) is None
                assert meter.value(meters.VOLTAGE, 1) == 228.5
                assert meter.value(meters.CURRENT_IMPORT, 1) == 6.5
                assert meter.value(meters.POWER_IMPORT) == 1485.2 or meter.value(meters.POWER_IMPORT) == 1485.3
                assert meter.energy_wh() == 42125
                assert len(list(meter.sampled())) == 6
        finally:
            server.stop()


def test_exception_responses(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, timeout_ms=300)
    with pytest.raises(ModbusException) as e:
        read_blocking(master, 1, 3, 0x0000, 2)  # no holding register 0 on an SDM630
    assert e.value.args[0] == 2
    with pytest.raises(ModbusException) as e:
        read_blocking(master, 1, 4, 0x0200, 2)  # past the input registers
    assert e.value.args[0] == 2
    assert server.requests == 2  # an exception is an answer: not retried
    regs = read_blocking(master, 1, 3, 0x0014, 2)  # holding: its Modbus address
    assert decode_f32(regs, 0) == 1.0


def test_timeout_when_the_meter_is_silent(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, baud=9600, timeout_ms=100, retries=2)
    server.silent = True
    t0 = time.monotonic()
    with pytest.raises(ModbusTimeout):
        read_blocking(master, 1, 4, 0, 2)
    elapsed = time.monotonic() - t0
    wait_until(lambda: server.requests == 3)
    assert master.timeouts == 3
    # three tries of 100 ms + 20 ms of wire time, with the gap between them
    assert 0.36 <= elapsed < 1.5
    server.silent = False
    assert decode_f32(read_blocking(master, 1, 4, 0, 2), 0) == 231.5


def test_other_unit_never_answers(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, timeout_ms=100, retries=0)
    with pytest.raises(ModbusTimeout):
        read_blocking(master, 7, 4, 0, 2)


def test_bad_crc_is_detected_and_retried(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, timeout_ms=300, retries=2)
    server.corrupt_next = 1
    assert decode_f32(read_blocking(master, 1, 4, 0, 2), 0) == 231.5
    assert master.crc_errors == 1 and server.requests == 2
    server.corrupt_next = 3
    with pytest.raises(ModbusCRCError):
        read_blocking(master, 1, 4, 0, 2)
    assert master.crc_errors == 4


def test_bad_crc_from_a_noisy_line():
    """A proxy flips one bit of a data byte on the way back: the CRC catches it."""
    flips = {"n": 1}

    def noise(direction, data):
        if direction == "ba" and flips["n"] and len(data) > 4:
            flips["n"] -= 1
            data = data[:3] + bytes((data[3] ^ 0x04,)) + data[4:]
        return data

    with PtyLink(noise) as link:
        server = SimMeterServer(link.path_b, "SDM630", meter_model=FixedModel(dict(SDM630_VALUES))).start()
        try:
            with serial.Serial(link.path_a, 9600, timeout=0) as ser:
                master = ModbusMaster(ser, timeout_ms=300, retries=1)
                assert decode_f32(read_blocking(master, 1, 4, 0, 2), 0) == 231.5
                assert master.crc_errors == 1
        finally:
            server.stop()


def test_meter_lost_and_back(pty_meter):
    server, port = pty_meter
    master = ModbusMaster(port, timeout_ms=80, retries=0)
    meter = Meter(master, meters.SDM630, fail_limit=2)
    assert asyncio.run(meter.update()) is None
    server.silent = True
    assert asyncio.run(meter.update()) is None
    assert asyncio.run(meter.update()) == EV_FAULT
    assert meter.fault == F_METER_LOST
    server.silent = False
    assert asyncio.run(meter.update()) == EV_CLEARED
    assert meter.energy_wh() == 12345625


MP_SCRIPT = r"""
import sys
sys.path.insert(0, ".")
import select
from firmware.hw.modbus import ModbusMaster
from firmware.hw.meters import Meter, SDM630
import asyncio

class TtyPort:
    # a pty opened as a file; poll tells whether a read would block
    def __init__(self, path):
        self.f = open(path, "r+b")
        self.p = select.poll()
        self.p.register(self.f, select.POLLIN)
    def write(self, buf):
        return self.f.write(buf)
    def readinto(self, buf):
        if not self.p.poll(0):
            return 0
        return self.f.readinto(buf)

m = Meter(ModbusMaster(TtyPort(sys.argv[1]), timeout_ms=500), SDM630)
print(asyncio.run(m.update()), m.fault, m.energy_wh(), m.value("Voltage", 1), m.master.requests)
"""


@pytest.mark.skipif(micropython_binary() is None, reason="no micropython binary")
def test_the_driver_under_micropython_reads_pymodbus(tmp_path):
    script = tmp_path / "mp_meter.py"
    script.write_text(MP_SCRIPT)
    with PtyLink() as link:
        server = SimMeterServer(link.path_b, "SDM630", meter_model=FixedModel(dict(SDM630_VALUES))).start()
        try:
            out = subprocess.run(
                [micropython_binary(), str(script), link.path_a],
                cwd=repo_root(),
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            server.stop()
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None", "12345625", "231.5", "2"], out.stdout
