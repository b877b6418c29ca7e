"""The emulator's board: real drivers on simulated parts, the meter read
through real Modbus RTU frames over a pty from pymodbus simulating it."""

import asyncio
import time

from boards import host
from firmware.hw import EV_CLOSED, EV_FAULT, F_METER_LOST, F_WELD, meters, status


def poll_until(driver, want, seconds=2.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ev = driver.poll()
        if ev == want:
            return ev
        time.sleep(0.005)
    raise AssertionError("no %r from %r" % (want, driver))


def test_a_session_on_the_host_board():
    d = host.build({"hw": {"meter": "SDM630", "sim_demand_a": 20, "meter_timeout_ms": 100, "meter_retries": 1}})
    try:
        bench = d["sim"]
        assert bench.meter_server is not None  # the pymodbus peer is up
        meter = d["meter"]
        assert asyncio.run(meter.update()) is None
        assert meter.value(meters.POWER_IMPORT) == 0.0
        bench.plug()
        assert poll_until(d["pilot"], "B") == "B"
        d["lock"].lock()
        poll_until(d["lock"], "locked")
        d["pilot"].set_current(16)
        bench.ev_request(True)
        poll_until(d["pilot"], "C")
        d["relay"].close()
        assert poll_until(d["relay"], EV_CLOSED) == EV_CLOSED
        assert asyncio.run(meter.update()) is None
        # the EV wants 20 A, the pilot offers 16 A: 16 A on three phases
        assert meter.value(meters.CURRENT_IMPORT, 1) == 16.0
        assert 10800 < meter.value(meters.POWER_IMPORT) < 11100
        # the energy register is the simulated meter's own count
        assert abs(meter.energy_wh() - bench.meter.import_wh) <= 1
        assert bench.meter_server.requests >= 4  # every reading crossed the pty
        # the bench console's meter loss: the line goes quiet
        bench.inject("meter_loss")
        events = [asyncio.run(meter.update()) for _ in range(3)]
        assert events == [None, None, EV_FAULT]
        assert meter.fault == F_METER_LOST
        assert status.error_code(meter.fault) == "PowerMeterFailure"
        bench.inject("meter_loss", False)
        assert asyncio.run(meter.update()) == "cleared"
        # a weld shows up when the session ends
        bench.inject("weld")
        d["relay"].open()
        poll_until(d["relay"], EV_FAULT)
        assert d["relay"].fault == F_WELD
        assert status.is_faulted(F_WELD)
    finally:
        d["close"]()
