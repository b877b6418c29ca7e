# Machine-like fakes for the hardware tests, on both runtimes: a scripted
# UART, an ADC, a stand-in `machine` module for the board files, and a clock
# that moves by itself for code that sleeps in asyncio between polls.
import sys

from firmware.hw.sim import ByteQueue, SimPin, SimPWM


def crc16_bitwise(buf, n=-1):
    """The textbook bitwise CRC-16/MODBUS (Serial Line §6.2.2): the reference
    the firmware's table version is checked and benchmarked against."""
    if n < 0:
        n = len(buf)
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


class StepClock:
    """A fake millisecond clock that advances `step` ms each time it is read,
    for async code whose waits are real sleeps (Meter.update)."""

    def __init__(self, start_ms=0, step=1):
        self.ms = start_ms
        self.step = step

    def __call__(self):
        self.ms += self.step
        return self.ms

    def advance(self, ms):
        self.ms += ms
        return self.ms


def fake_sleep(clock):
    """An async sleep_ms for ModbusMaster that moves a fake clock instead."""

    async def sleep_ms(ms):
        clock.advance(ms)

    return sleep_ms


class ScriptedUART:
    """A UART whose peer is a function: reply(request_bytes) -> bytes or None,
    called at every write. Records each write with the clock's time."""

    def __init__(self, reply=None, clock=None):
        self.reply = reply
        self.clock = clock
        self.writes = []  # (time_ms, bytes)
        self.rx = ByteQueue()

    def write(self, buf):
        data = bytes(buf)
        self.writes.append((self.clock() if self.clock else 0, data))
        if self.reply is not None:
            out = self.reply(data)
            if out:
                self.rx.put(out)
        return len(data)

    def feed(self, data):
        self.rx.put(data)

    def readinto(self, buf):
        n = self.rx.readinto(buf)
        return n if n else None  # machine.UART returns None when empty


class FakeADC:
    """machine.ADC-like: read_u16() returns the next value of a cycle."""

    def __init__(self, values):
        self.values = values
        self.i = 0

    def read_u16(self):
        v = self.values[self.i % len(self.values)]
        self.i += 1
        return v


class FakeMachinePin(SimPin):
    IN = 0
    OUT = 1
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, ident, mode=-1, pull=-1, value=None):
        SimPin.__init__(self, 0 if value is None else value)
        self.id = ident
        self.mode = mode
        self.pull = pull


class FakeMachineUART:
    def __init__(self, ident, baudrate=9600, **kw):
        self.id = ident
        self.baudrate = baudrate
        self.kw = kw
        self.rx = ByteQueue()
        self.written = bytearray()

    def write(self, buf):
        self.written.extend(buf)
        return len(buf)

    def readinto(self, buf):
        return self.rx.readinto(buf) or None

    def flush(self):
        pass


class FakeMachinePWM(SimPWM):
    def __init__(self, pin, freq=0, duty_u16=65535):
        SimPWM.__init__(self)
        self.pin = pin
        self.hz = freq


class FakeMachineADC(FakeADC):
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        FakeADC.__init__(self, [32768])
        self.pin = pin
        self.atten = atten


class FakeMachine:
    """Stands in for the `machine` module while a board file is built."""

    Pin = FakeMachinePin
    UART = FakeMachineUART
    PWM = FakeMachinePWM
    ADC = FakeMachineADC


def install_fake_machine():
    """Put FakeMachine in sys.modules as `machine`; returns an undo function."""
    old = sys.modules.get("machine")
    sys.modules["machine"] = FakeMachine

    def undo():
        if old is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = old

    return undo
