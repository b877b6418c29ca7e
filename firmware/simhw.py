# The hardware of a simulated charger (boards/host.py on CPython,
# boards/unix.py on the MicroPython unix port): the real drivers on the
# simulated parts of firmware/hw/sim.py, polled like a device polls them,
# plus the bench console commands that move the simulated EV, hold a card to
# the reader and inject faults. Runs on both runtimes; never flashed.
from firmware.compat import ticks_diff, ticks_ms
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

CARD_HOLD_MS = 1000  # a card stays on the reader this long, then is taken away


def _connector(req):
    cid = req.get("connector") or 1
    if cid != 1:
        raise ValueError("the simulated board has connector 1 only")
    return cid


def is_uid(tag):
    """A card UID (4, 7 or 10 bytes as hex) rather than any other idTag."""
    if len(tag) % 2 or not 8 <= len(tag) <= 20:
        return False
    for c in tag:
        if c not in "0123456789abcdefABCDEF":
            return False
    return True


class SimHardware(BoardHardware):
    """BoardHardware over one connector of a SimBench (drivers["sim"])."""

    def __init__(self, drivers, ticks=ticks_ms, **kw):
        BoardHardware.__init__(self, [drivers], rfid=drivers.get("rfid"), **kw)
        self.sim = drivers["sim"]
        self.close = drivers.get("close")
        self._ticks = ticks
        self._card_since = None  # ticks when the card on the reader was put there
        self._next_card = None  # UID waiting for the reader to see an empty field

    def poll_once(self):
        if self._card_since is not None and ticks_diff(self._ticks(), self._card_since) >= CARD_HOLD_MS:
            self._card_since = None
            self.sim.remove_card()  # taken away, so the next tap is a new one
        self._present_next()
        BoardHardware.poll_once(self)

    def _present_next(self):
        # A tap right after another one waits until the reader has seen the
        # field empty; otherwise the driver would take it for the same card.
        tag = self._next_card
        if tag is not None and (self.rfid is None or self.rfid.uid is None):
            self._next_card = None
            self.sim.present_card(tag)
            self._card_since = self._ticks()

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
        if not is_uid(tag):
            return False
        self.sim.remove_card()
        self._card_since = None
        self._next_card = tag
        self._present_next()
        return True
