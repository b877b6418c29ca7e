# The hardware the agent sees, made of a board's drivers (firmware/hw): it
# polls them, turns their events into the agent's ("plug", 1, True)-style
# events (see firmware/agent.py), and carries out relay and lock commands.
#
#   hw = BoardHardware([drivers_connector_1, ...], rfid=reader)
# where each drivers dict is what boards.<board>.build() returns:
#   {"relay": Contactor, "lock": ConnectorLock or None, "pilot": Pilot,
#    "meter": Meter or None, ...}
#
# Pilot states (IEC 61851-1): A no EV; B EV connected, not asking; C/D EV
# asking for energy; E/F faults. The PWM offer goes on with the contactor
# command and off when it opens (state B1/B2 of the standard).
import asyncio

from firmware.compat import print_exception
from firmware.hw import EV_CLEARED, EV_CLOSED, EV_FAULT, EV_LOCKED, EV_OPENED, EV_UNLOCKED, F_WELD
from firmware.hw.status import is_faulted

POLL_MS = 50
METER_MS = 1000  # a reading a second: meterStart/meterStop are at most this old

_PLUG = {"A": (False, False), "B": (True, False), "C": (True, True), "D": (True, True)}


def _noop(ev):
    pass


class BoardHardware:
    def __init__(self, connectors, rfid=None, max_current_a=32, poll_ms=POLL_MS, meter_ms=METER_MS, reset=None):
        self.parts = [None] + list(connectors)
        self.connectors = len(connectors)
        self.fixed_cable = tuple([False] + [d.get("lock") is None for d in connectors])
        self.rfid = rfid
        self.max_current_a = max_current_a
        self.poll_ms = poll_ms
        self.meter_ms = meter_ms
        self.listener = _noop
        self._reset = reset
        self._faults = [None] * (self.connectors + 1)
        self._pilot_faults = [None] * (self.connectors + 1)  # what each pilot last reported

    # ---- commands from the agent -----------------------------------------------------

    def relay(self, cid, on):
        d = self.parts[cid]
        if on:
            d["pilot"].set_current(self.max_current_a)
            if not d["relay"].close():
                self.listener(("relay", cid, False))  # welded: refuses to close
        else:
            d["relay"].open()
            d["pilot"].set_current(0)

    def lock(self, cid, locked):
        lk = self.parts[cid].get("lock")
        if lk is None:
            self.listener(("lock", cid, locked))  # tethered cable: nothing to move
        elif locked:
            lk.lock()
        else:
            lk.unlock()

    def session_alive(self, cid):
        # A controller reset drops the contactor coil: no session survives it.
        return False

    def reset(self, hard):
        if self._reset is not None:
            self._reset(hard)

    def start(self):
        tasks = [self._poll()]
        for cid in range(1, self.connectors + 1):
            if self.parts[cid].get("meter") is not None:
                tasks.append(self._meter(cid))
        return tasks

    # ---- polling -------------------------------------------------------------------------

    async def _poll(self):
        while True:
            try:
                self.poll_once()
            except Exception as e:  # a driver bug must not stop the charger
                print_exception(e)
            await asyncio.sleep(self.poll_ms / 1000)

    def poll_once(self):
        for cid in range(1, self.connectors + 1):
            d = self.parts[cid]
            relay = d["relay"]
            ev = relay.poll()
            if ev is not None:
                self._relay_event(cid, relay, ev)
            elif relay.fault == F_WELD and not relay.commanded and relay.clear_fault():
                # The weld latch lets go once the auxiliary contact reads
                # open again (contacts freed or the contactor replaced).
                self._clear(cid)
            lk = d.get("lock")
            if lk is not None:
                ev = lk.poll()
                if ev is not None:
                    self._lock_event(cid, lk, ev)
            ev = d["pilot"].poll()
            if ev is not None:
                self._pilot_event(cid, d["pilot"], ev)
        if self.rfid is not None:
            ev = self.rfid.poll()
            if ev == EV_FAULT:
                self.listener(("warning", 0, self.rfid.fault, None))
            elif ev == EV_CLEARED:
                self.listener(("warning", 0, None, None))
            elif ev is not None:
                self.listener(("card", ev, None))

    def _relay_event(self, cid, relay, ev):
        if ev == EV_CLOSED:
            self.listener(("relay", cid, True))
        elif ev == EV_OPENED:
            self.listener(("relay", cid, False))
        elif ev == EV_FAULT:
            self._fault(cid, relay.fault)
            if not relay.is_closed():
                self.listener(("relay", cid, False))
        elif ev == EV_CLEARED:
            self._clear(cid)

    def _lock_event(self, cid, lk, ev):
        if ev == EV_LOCKED or ev == EV_UNLOCKED:
            self.listener(("lock", cid, ev == EV_LOCKED))
        elif ev == EV_FAULT:
            # The core decides what a failed lock means (no start; UnlockFailed).
            self.listener(("lock", cid, lk.is_locked()))

    def _pilot_event(self, cid, pilot, ev):
        state = _PLUG.get(ev)
        if state is not None:
            self.listener(("plug", cid, state[0]))
            self.listener(("drawing", cid, state[1]))
        # When the state and the fault change together the driver returns the
        # state (E comes with F_PILOT_SHORT, F with F_PILOT_STUCK), so its
        # fault is read after every event: a shorted pilot must open the
        # contactor (IEC 61851-1 state E) even if only "E" was returned.
        fault = pilot.fault
        old = self._pilot_faults[cid]
        if fault != old:
            self._pilot_faults[cid] = fault
            if old is not None and self._faults[cid] == old:
                self._clear(cid)
            if fault is not None:
                self._fault(cid, fault)

    def _fault(self, cid, fault):
        if fault is None:
            return
        self._faults[cid] = fault
        if is_faulted(fault):
            self.listener(("fault", cid, fault, None))
        else:
            self.listener(("warning", cid, fault, None))

    def _clear(self, cid):
        fault = self._faults[cid]
        self._faults[cid] = None
        if fault is not None and is_faulted(fault):
            self.listener(("fault_cleared", cid))
        elif fault is not None:
            self.listener(("warning", cid, None, None))

    async def _meter(self, cid):
        meter = self.parts[cid]["meter"]
        while True:
            try:
                await self.read_meter(cid, meter)
            except Exception as e:
                print_exception(e)
            await asyncio.sleep(self.meter_ms / 1000)

    async def read_meter(self, cid, meter):
        """One meter update, told to the agent. Only a reading taken now is
        passed on: after a failed update the agent hears None (no current
        reading), so the last good values are never sampled again under a
        newer timestamp while the meter is silent."""
        ev = await meter.update()
        if ev == EV_FAULT:
            self._fault(cid, meter.fault)
        elif ev == EV_CLEARED:
            self._clear(cid)
        self.listener(("meter", cid, reading(meter) if meter.failures == 0 and meter.fresh() else None))


def reading(meter):
    """The agent's reading dict ({"Voltage.L1-N": 230.1, ...}) from a Meter."""
    out = {}
    for measurand, phase, unit, value in meter.sampled():
        out[measurand if phase is None else measurand + "." + phase] = value
    return out
