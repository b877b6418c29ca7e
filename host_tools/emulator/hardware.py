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

from firmware.hardware import BoardHardware

# Console fault names -> SimBench injection names.
FAULTS = {
    "weld": "weld",
    "close": "close_failure",
    "meter": "meter_loss",
    "lock": "lock_failure",
    "reader": "reader_failure",
    "pilot": "pilot_short",
    "diode": "diode_missing",
}


def _connector(req):
    cid = req.get("connector") or 1
    if cid != 1:
        raise ValueError("the emulated board has connector 1 only")
    return cid


def _is_uid(tag):
    if len(tag) % 2 or not 8 <= len(tag) <= 20:
        return False
    for c in tag:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


class EmulatedHardware(BoardHardware):
    def __init__(self, drivers, **kw):
        BoardHardware.__init__(self, [drivers], rfid=drivers.get("rfid"), **kw)
        self.sim = drivers["sim"]
        self.close = drivers.get("close")

    def console_plug(self, req):
        _connector(req)
        self.sim.plug()
        return {"sim": self.sim.snapshot()}

    def console_unplug(self, req):
        _connector(req)
        self.sim.unplug()
        return {"sim": self.sim.snapshot()}

    def console_charge(self, req):
        _connector(req)
        if not self.sim.ev.plugged:
            raise ValueError("plug the EV in first")
        self.sim.ev_request(True)
        return {"sim": self.sim.snapshot()}

    def console_pause(self, req):
        _connector(req)
        self.sim.ev_request(False)
        return {"sim": self.sim.snapshot()}

    def console_fault(self, req):
        return self._inject(req, True)

    def console_clear(self, req):
        return self._inject(req, False)

    def _inject(self, req, on):
        name = FAULTS.get(req.get("fault"))
        if name is None:
            raise ValueError("fault must be one of " + ", ".join(sorted(FAULTS)))
        self.sim.inject(name, on)
        return {"sim": self.sim.snapshot()}

    def snapshot(self):
        """The simulated parts as they are (console status): contacts, lock, EV."""
        return self.sim.snapshot()

    def present(self, tag):
        """A card at the reader: a UID goes through the simulated PN532 (the
        real driver reads it); any other idTag is handed over directly."""
        if not _is_uid(tag):
            return False
        import asyncio

        self.sim.remove_card()
        self.sim.present_card(tag)
        # Taken away again after a moment, so the next tap is a new one.
        asyncio.get_running_loop().call_later(1.0, self.sim.remove_card)
        return True


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
