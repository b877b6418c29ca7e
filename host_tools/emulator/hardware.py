# Simulated hardware for emulated chargers.
#
# EmulatedHardware: the host board (boards/host.py): the real drivers on
#   simulated pins, the meter read through real Modbus RTU frames from a
#   pymodbus server on a pty (or in-process for fleets), polled like a
#   device does. The bench console drives the simulated EV, card reader
#   and faults through it.
# FleetHardware: a light model for fleets of thousands of chargers: no
#   polling, feedback pushed at once, energy integrated on demand. The same
#   agent events, so the same agent code runs on it.
import time

# The host board's hardware is the simulated charger of firmware/simhw.py,
# shared with the MicroPython unix port's board.
from firmware.simhw import FAULTS, SimHardware as EmulatedHardware  # noqa: F401


class FleetHardware:
    """One connector, every part ideal and instant; energy from a model EV."""

    connectors = 1
    fixed_cable = (False, False)

    def __init__(self, power_w=11000.0, energy_wh=0.0, clock=time.monotonic):
        self.listener = None
        self.clock = clock
        self.power_w = power_w
        self.energy_wh = energy_wh
        self.relay_on = False
        self.plugged = False
        self.drawing = False
        self._t = clock()
        self._reading = {"Energy.Active.Import.Register": 0.0, "Power.Active.Import": 0.0}

    def _integrate(self):
        t = self.clock()
        if self.relay_on and self.drawing:
            self.energy_wh += self.power_w * (t - self._t) / 3600.0
        self._t = t

    def refresh(self):
        self._integrate()
        r = self._reading
        r["Energy.Active.Import.Register"] = round(self.energy_wh, 1)
        r["Power.Active.Import"] = self.power_w if (self.relay_on and self.drawing) else 0.0
        self.listener(("meter", 1, r))

    def relay(self, cid, on):
        self._integrate()
        self.relay_on = on
        self.listener(("relay", cid, on))

    def lock(self, cid, locked):
        self.listener(("lock", cid, locked))

    def session_alive(self, cid):
        return False

    def start(self):
        return []

    def reset(self, hard):
        pass

    # the simulated driver of the EV and the card
    def plug(self, on=True):
        self.refresh()
        self.plugged = on
        if not on:
            self.drawing = False
        self.listener(("plug", 1, on))

    def draw(self, on=True):
        self._integrate()
        self.drawing = on
        self.listener(("drawing", 1, on))

    def card(self, tag):
        self.refresh()
        self.listener(("card", tag, None))
