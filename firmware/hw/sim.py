# Simulated hardware for the emulator and the tests: pins, a contactor with
# its auxiliary contact, a lock actuator, an EV on the control pilot, a PN532
# chip at byte level, and an energy meter that answers Modbus RTU frames.
#
# The simulated twin of each driver is the real driver built on these parts
# (drivers() below), so the emulator runs exactly the code a charger runs,
# and every fault the bench console injects travels the same path a real
# one would: a welded contactor keeps its auxiliary contact closed, a lost
# meter stops answering on the line, a dead reader stops answering frames.
#
# Runs on both runtimes; not flashed to devices (host_tools/flash.py leaves it
# out).
import struct

from firmware.compat import ticks_diff, ticks_ms
from firmware.hw import meters
from firmware.hw.modbus import FC_READ_INPUT, crc16
from firmware.hw.pilot import current_for_duty


class SimPin:
    """machine.Pin-like: value() reads, value(v) drives. An input pin may be
    given a reader function; on_set is told of every level driven."""

    def __init__(self, level=0, reader=None, on_set=None):
        self.level = level
        self._reader = reader
        self._on_set = on_set

    def value(self, v=None):
        if v is None:
            return self._reader() if self._reader is not None else self.level
        self.level = 1 if v else 0
        if self._on_set is not None:
            self._on_set(self.level)
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class SimPWM:
    """machine.PWM-like: freq() and duty_u16()."""

    def __init__(self):
        self.hz = 0
        self.duty = 65535

    def freq(self, hz=None):
        if hz is None:
            return self.hz
        self.hz = hz
        return None

    def duty_u16(self, d=None):
        if d is None:
            return self.duty
        self.duty = d
        return None


class SimContactorHw:
    """A contactor: `coil` is the output pin, `aux` its auxiliary contact
    (reads 1 when the main contacts are closed). The contacts follow the coil
    after operate_ms. Faults: welded (contacts closed whatever the coil
    does), stuck_open (contacts open whatever the coil does: a broken coil
    or supply; while closed this is a dropout)."""

    def __init__(self, ticks=ticks_ms, operate_ms=30):
        self._ticks = ticks
        self.operate_ms = operate_ms
        self.welded = False
        self.stuck_open = False
        self._state = 0
        self._target = 0
        self._t = ticks()
        self.coil = SimPin(0, on_set=self._coil_set)
        self.aux = SimPin(reader=self.closed)

    def _coil_set(self, level):
        self.closed()  # settle the previous movement first
        if level != self._target:
            self._target = level
            self._t = self._ticks()

    def closed(self):
        if self.welded:
            return 1
        if self.stuck_open:
            return 0
        if self._state != self._target and ticks_diff(self._ticks(), self._t) >= self.operate_ms:
            self._state = self._target
        return self._state


class SimLockHw:
    """A lock actuator with position feedback. Motor type: lock_pin drives
    toward locked, unlock_pin toward unlocked; travel takes travel_ms. Hold
    type (hold=True): lock_pin's level is the position wanted. jammed: it
    never moves."""

    def __init__(self, ticks=ticks_ms, travel_ms=150, hold=False):
        self._ticks = ticks
        self.travel_ms = travel_ms
        self.hold = hold
        self.jammed = False
        self.position = 0
        self._dir = None  # direction being driven, or None
        self._t = 0
        self.lock_pin = SimPin(0, on_set=self._lock_set)
        self.unlock_pin = None if hold else SimPin(0, on_set=self._unlock_set)
        self.feedback = SimPin(reader=self._read)

    def _lock_set(self, level):
        self._drive(1 if level else (0 if self.hold else None))

    def _unlock_set(self, level):
        self._drive(0 if level else None)

    def _drive(self, direction):
        self._read()
        if direction != self._dir:
            self._dir = direction
            self._t = self._ticks()

    def _read(self):
        if self._dir is not None and not self.jammed:
            if ticks_diff(self._ticks(), self._t) >= self.travel_ms:
                self.position = self._dir
        return self.position


class SimEV:
    """The vehicle side of the pilot and the load it draws."""

    def __init__(self, demand_a=16.0, phases=3):
        self.plugged = False
        self.requesting = False  # state C (or D with ventilation)
        self.ventilation = False
        self.diode = True
        self.short = False  # CP shorted to PE: state E
        self.demand_a = demand_a
        self.phases = phases

    def level_mv(self):
        if self.short:
            return 0
        if not self.plugged:
            return 12000
        if self.requesting:
            return 3000 if self.ventilation else 6000
        return 9000


class SimPilotHw:
    """The pilot line: `pwm` is what the Pilot driver drives; measure() is
    what its sampler would read with this EV on the line."""

    def __init__(self, ev):
        self.ev = ev
        self.pwm = SimPWM()

    def measure(self):
        d = self.pwm.duty
        if self.ev.short:
            return (0, 0)
        if d == 0:
            return (-12000, -12000)
        hi = self.ev.level_mv()
        if d >= 65535:
            return (hi, hi)
        if self.ev.plugged and not self.ev.diode:
            return (hi, -hi)  # the EV's resistor loads the negative half too
        return (hi, -12000)

    def offered_a(self):
        d = self.pwm.duty
        if d == 0 or d >= 65535:
            return 0
        # an EV reads the duty to about 0.1 A and stays below it
        return int(current_for_duty((d * 1000 + 32767) // 65535) * 10) / 10


class MeterModel:
    """The electricity a meter would see: an EV drawing min(demand, offered)
    per phase while the contacts are closed and it asks for energy (state
    C/D). Energy is integrated at every read."""

    def __init__(self, ticks=ticks_ms, contactor=None, ev=None, pilot=None, phases=3, volts=230.0, pf=0.99):
        self._ticks = ticks
        self.contactor = contactor
        self.ev = ev
        self.pilot = pilot
        self.phases = phases
        self.volts = volts
        self.pf = pf
        self.import_wh = 0.0
        self.export_wh = 0.0
        self._t = ticks()
        self._seed = 12345

    def current_a(self):
        ev = self.ev
        if ev is None or not ev.plugged or not ev.requesting or ev.short:
            return 0.0
        if self.contactor is not None and not self.contactor.closed():
            return 0.0
        limit = self.pilot.offered_a() if self.pilot is not None else ev.demand_a
        return float(min(ev.demand_a, limit))

    def phase_current(self, phase):
        ev = self.ev
        n = min(self.phases, ev.phases) if ev is not None else 0
        return self.current_a() if 1 <= phase <= n else 0.0

    def power_w(self, phase=0):
        if phase:
            return self.volts * self.phase_current(phase) * self.pf
        return sum(self.power_w(p) for p in range(1, self.phases + 1))

    def advance(self):
        now = self._ticks()
        dt = ticks_diff(now, self._t)
        if dt > 0:
            self.import_wh += self.power_w() * dt / 3600000.0
            self._t = now

    def _noise(self):
        # a small deterministic wobble so readings look alive (LCG)
        self._seed = (self._seed * 1103515245 + 12345) & 0x7FFFFFFF
        return ((self._seed >> 16) % 200 - 100) / 100.0

    def read(self, measurand, phase):
        """A value in the meter's own unit (energy in kWh)."""
        if measurand == meters.VOLTAGE:
            return self.volts + self._noise() if phase <= self.phases else 0.0
        if measurand == meters.CURRENT_IMPORT:
            return self.phase_current(phase)
        if measurand == meters.POWER_IMPORT:
            return self.power_w(phase)
        if measurand == meters.FREQUENCY:
            return 50.0 + self._noise() / 50
        self.advance()
        if measurand == meters.ENERGY_IMPORT:
            return self.import_wh / 1000.0
        if measurand == meters.ENERGY_EXPORT:
            return self.export_wh / 1000.0
        return 0.0

    def register_values(self, model):
        """{register: float} for every row of a meters model."""
        out = {}
        for m, phase, reg, scale, _ in model["rows"]:
            out[reg] = self.read(m, phase)
        return out


def register_span(model):
    """The input registers a simulated meter answers: 0 up to the last row."""
    return max(r[2] for r in model["rows"]) + 2


def fill_registers(words, model, mm, start=0):
    """Write the model's float32 values (high word first) into a list of
    16-bit words that begins at register `start`."""
    for reg, v in mm.register_values(model).items():
        i = reg - start
        if 0 <= i and i + 1 < len(words):
            hi, lo = struct.unpack(">HH", struct.pack(">f", v))
            words[i] = hi
            words[i + 1] = lo


class ByteQueue:
    """A growing byte FIFO that does not need bytearray slice deletion."""

    def __init__(self):
        self._buf = bytearray()
        self._pos = 0

    def put(self, data):
        self._buf.extend(data)

    def __len__(self):
        return len(self._buf) - self._pos

    def readinto(self, buf):
        n = min(len(buf), len(self))
        if n:
            buf[:n] = self._buf[self._pos : self._pos + n]
            self._pos += n
            if self._pos == len(self._buf):
                self._buf = bytearray()
                self._pos = 0
        return n

    def clear(self):
        self._buf = bytearray()
        self._pos = 0


class SimModbusPort:
    """A Modbus RTU slave at byte level behind a UART-like port: the meter
    `model` (from meters.MODELS) at address `unit`, its values from a
    MeterModel. Injections: silent (no answer: meter lost), corrupt (the next
    n replies get a bad CRC), exception (answer every request with it)."""

    def __init__(self, model, meter_model, unit=1):
        self.model = model
        self.mm = meter_model
        self.unit = unit
        self.span = register_span(model)
        self.silent = False
        self.corrupt = 0
        self.exception = None
        self.requests = 0
        self._in = bytearray()
        self._out = ByteQueue()

    def write(self, buf):
        if self.silent:
            return len(buf)
        self._in.extend(buf)
        while len(self._in) >= 8:
            frame = bytes(self._in[:8])
            self._in = self._in[8:]
            self._answer(frame)
        return len(buf)

    def readinto(self, buf):
        return self._out.readinto(buf)

    def _answer(self, req):
        crc = crc16(req, 6)
        if req[6] != (crc & 0xFF) or req[7] != (crc >> 8) or req[0] != self.unit:
            return  # a slave ignores frames with a bad CRC or for others
        self.requests += 1
        fc = req[1]
        addr = (req[2] << 8) | req[3]
        count = (req[4] << 8) | req[5]
        if self.exception is not None:
            return self._reply(bytes((self.unit, fc | 0x80, self.exception)))
        if fc != FC_READ_INPUT and fc != 3:
            return self._reply(bytes((self.unit, fc | 0x80, 1)))
        if fc != self.model["fc"] or count < 1 or count > 125 or addr + count > self.span:
            return self._reply(bytes((self.unit, fc | 0x80, 2)))
        words = [0] * (count + 1)
        fill_registers(words, self.model, self.mm, addr)
        body = bytearray((self.unit, fc, 2 * count))
        for i in range(count):
            body.append(words[i] >> 8)
            body.append(words[i] & 0xFF)
        self._reply(body)

    def _reply(self, body):
        crc = crc16(body)
        if self.corrupt > 0:
            self.corrupt -= 1
            crc ^= 0x5A5A
        self._out.put(body)
        self._out.put(bytes((crc & 0xFF, crc >> 8)))


class CutPort:
    """Wraps a port so a broken RS-485 line can be simulated: while `cut`,
    nothing goes out and nothing comes in."""

    def __init__(self, inner):
        self.inner = inner
        self.cut = False
        self._scratch = bytearray(32)

    def write(self, buf):
        if self.cut:
            return len(buf)
        return self.inner.write(buf)

    def readinto(self, buf):
        if self.cut:
            while self.inner.readinto(self._scratch):
                pass  # what the meter still sends is lost on the line
            return 0
        return self.inner.readinto(buf)


def _pn532_frame(data):
    length = len(data)
    s = 0
    for b in data:
        s += b
    return bytes((0, 0, 0xFF, length, (-length) & 0xFF)) + bytes(data) + bytes(((-s) & 0xFF, 0))


class FakePn532:
    """A PN532 in HSU mode at byte level, UART-like. It sleeps until woken by
    0x55, ACKs every well-formed frame, answers SAMConfiguration,
    GetFirmwareVersion (PN532 v1.6), RFConfiguration and InListPassiveTarget
    (the card present, if any). Injections: dead (answers nothing), garble
    (the next n answers get a bad checksum)."""

    def __init__(self):
        self.awake = False
        self.dead = False
        self.garble = 0
        self.card = None  # UID bytes of the card in the field
        self.commands = []  # command codes received, for tests
        self._in = bytearray()
        self._out = ByteQueue()

    def present(self, uid):
        self.card = bytes(uid)

    def remove(self):
        self.card = None

    def write(self, buf):
        if self.dead:
            return len(buf)
        for b in buf:
            if not self.awake:
                if b == 0x55:
                    self.awake = True
                continue
            self._in.append(b)
        self._parse()
        return len(buf)

    def readinto(self, buf):
        return self._out.readinto(buf)

    def _parse(self):
        data = self._in
        while True:
            i = 0
            while i + 2 < len(data) and not (data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 0xFF):
                i += 1
            if i + 5 > len(data):
                break
            length = data[i + 3]
            end = i + 5 + length + 2
            if end > len(data):
                break
            frame = bytes(data[i:end])
            data = data[end:]
            self._handle(frame)
        self._in = bytearray(data)

    def _handle(self, f):
        length = f[3]
        if (length + f[4]) & 0xFF or sum(f[5 : 5 + length + 1]) & 0xFF or f[5] != 0xD4:
            self._out.put(b"\x00\x00\xff\xff\x00\x00")  # NACK
            return
        cmd = f[6]
        self.commands.append(cmd)
        self._out.put(b"\x00\x00\xff\x00\xff\x00")  # ACK
        if cmd == 0x14 or cmd == 0x32:
            answer = (0xD5, cmd + 1)
        elif cmd == 0x02:
            answer = (0xD5, 0x03, 0x32, 0x01, 0x06, 0x07)
        elif cmd == 0x4A:
            if self.card is None:
                answer = (0xD5, 0x4B, 0)
            else:
                answer = (0xD5, 0x4B, 1, 1, 0x00, 0x04, 0x08, len(self.card)) + tuple(self.card)
        else:
            self._out.put(b"\x00\x00\xff\x01\xff\x7f\x81\x00")  # syntax error
            return
        frame = _pn532_frame(answer)
        if self.garble > 0:
            self.garble -= 1
            frame = frame[:-2] + bytes(((frame[-2] + 1) & 0xFF, 0))
        self._out.put(frame)


# Names the bench console uses for fault injection.
INJECTIONS = (
    "weld",
    "close_failure",
    "meter_loss",
    "lock_failure",
    "reader_failure",
    "pilot_short",
    "diode_missing",
)


class SimBench:
    """Every simulated part of one charger, and the hooks the bench console
    calls: inject(name, on), plug(), unplug(), ev_request(on), set_demand(a),
    present_card(uid_hex), remove_card(), snapshot().

    meter_line is the port the Modbus master should use: by default the
    in-process slave (SimModbusPort); pass line= to put a real line (a pty to
    host_tools/sim_meter.py) behind the same cut-able wrapper."""

    def __init__(self, ticks=ticks_ms, model="SDM630", phases=None, unit=1, line=None, demand_a=16.0, lock_hold=False):
        self.ticks = ticks
        self.model = meters.MODELS[model] if isinstance(model, str) else model
        if phases is None:
            phases = self.model["phases"]
        self.phases = phases
        self.unit = unit
        self.ev = SimEV(demand_a=demand_a, phases=phases)
        self.contactor = SimContactorHw(ticks)
        self.lock = SimLockHw(ticks, hold=lock_hold)
        self.pilot = SimPilotHw(self.ev)
        self.reader = FakePn532()
        self.meter = MeterModel(ticks, self.contactor, self.ev, self.pilot, phases)
        self.slave = SimModbusPort(self.model, self.meter, unit) if line is None else None
        self.meter_line = CutPort(line if line is not None else self.slave)
        self.meter_server = None  # set by boards/host.py when a pymodbus server runs
        self.injected = {}

    def attach_line(self, port):
        """Read the meter through `port` (e.g. a pty to host_tools/sim_meter)
        instead of the in-process slave; meter_loss still cuts it."""
        self.slave = None
        self.meter_line = CutPort(port)

    def inject(self, name, on=True):
        """Turn a fault on or off. Returns False for an unknown name."""
        on = bool(on)
        if name == "weld":
            self.contactor.welded = on
        elif name == "close_failure":
            self.contactor.stuck_open = on
        elif name == "meter_loss":
            self.meter_line.cut = on
        elif name == "lock_failure":
            self.lock.jammed = on
        elif name == "reader_failure":
            self.reader.dead = on
            if on:
                self.reader.awake = False  # a dead chip forgets it was woken
        elif name == "pilot_short":
            self.ev.short = on
        elif name == "diode_missing":
            self.ev.diode = not on
        else:
            return False
        self.injected[name] = on
        return True

    def plug(self):
        self.ev.plugged = True

    def unplug(self):
        self.ev.plugged = False
        self.ev.requesting = False

    def ev_request(self, on=True):
        self.ev.requesting = bool(on) and self.ev.plugged

    def set_demand(self, amps):
        self.ev.demand_a = float(amps)

    def present_card(self, uid_hex):
        self.reader.present(_unhex(uid_hex))

    def remove_card(self):
        self.reader.remove()

    def snapshot(self):
        """A JSON-able view for the console's status command."""
        return {
            "plugged": self.ev.plugged,
            "ev_requesting": self.ev.requesting,
            "demand_a": self.ev.demand_a,
            "contacts_closed": bool(self.contactor.closed()),
            "lock_position": self.lock._read(),
            "offered_a": self.pilot.offered_a(),
            "power_w": round(self.meter.power_w(), 1),
            "energy_wh": round(self.meter.import_wh, 3),
            "card": None if self.reader.card is None else _hex(self.reader.card),
            "injected": sorted(k for k, v in self.injected.items() if v),
        }


def _unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def _hex(data):
    return "".join("%02X" % b for b in data)


def drivers(bench, master=None, ticks=None, stale_ms=15000, baud=9600):
    """The real drivers on a SimBench's parts: {relay, lock, pilot, rfid,
    meter, modbus}. `master` defaults to a ModbusMaster on bench.meter_line."""
    from firmware.hw.lock import ConnectorLock
    from firmware.hw.meters import Meter
    from firmware.hw.modbus import ModbusMaster
    from firmware.hw.pilot import Pilot
    from firmware.hw.relay import Contactor
    from firmware.hw.rfid import Pn532Reader

    ticks = ticks or bench.ticks
    if master is None:
        master = ModbusMaster(bench.meter_line, baud=baud, ticks=ticks)
    return {
        "relay": Contactor(bench.contactor.coil, bench.contactor.aux, ticks=ticks),
        "lock": ConnectorLock(bench.lock.lock_pin, bench.lock.unlock_pin, bench.lock.feedback, ticks=ticks),
        "pilot": Pilot(bench.pilot.pwm, bench.pilot, ticks=ticks),
        "rfid": Pn532Reader(bench.reader, ticks=ticks),
        "modbus": master,
        "meter": Meter(master, bench.model, bench.unit, bench.phases, stale_ms=stale_ms, ticks=ticks),
    }
