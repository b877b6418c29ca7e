# Modbus RTU master: function codes 0x03 (read holding registers) and 0x04
# (read input registers) over a duck-typed serial port.
#
# The port needs two methods, both non-blocking:
#   write(buf) -> int                 queue bytes for transmission
#   readinto(buf) -> int or None      copy what has arrived; 0/None if nothing
# machine.UART(..., timeout=0) and serial.Serial(..., timeout=0) are such
# ports as they are; Rs485Port below adds a driver-enable pin for transceivers
# without automatic direction control.
#
# The master is a small state machine: start() arms a request, poll() moves it
# on without ever blocking (wait for bus silence, send, collect the reply,
# retry) and returns None until the registers are there. `await read(...)`
# runs that loop with asyncio sleeps sized from the baud rate, so the OCPP loop
# keeps running while a meter answers (host tools drive poll() with
# time.sleep: host_tools.serial_link.read_blocking).
#
# References: Modbus Application Protocol V1.1b3 §6.3/§6.4 (function codes
# 3/4, 1..125 registers, exception responses §7) and Modbus over Serial Line
# V1.02 §2.5.1.1 (RTU framing: 3.5-character silence between frames, fixed
# 1.750 ms above 19200 baud) and §6.2.2 (CRC-16, polynomial 0xA001 reflected,
# initial 0xFFFF, low byte sent first).
import struct

from firmware.compat import const, ticks_diff, ticks_ms

FC_READ_HOLDING = const(3)
FC_READ_INPUT = const(4)

MAX_REGISTERS = const(125)  # per request, Application Protocol §6.3/§6.4
_RX_SIZE = const(256)  # address + fc + count + 250 data + CRC = 255
_BITS_PER_CHAR = const(11)  # start + 8 data + parity (or 2nd stop) + stop

# Exception codes (Application Protocol §7).
EXC_ILLEGAL_FUNCTION = const(1)
EXC_ILLEGAL_ADDRESS = const(2)
EXC_ILLEGAL_VALUE = const(3)
EXC_DEVICE_FAILURE = const(4)
EXC_BUSY = const(6)

_IDLE = const(0)
_GAP = const(1)  # waiting for bus silence before (re)sending
_WAIT = const(2)  # request sent, collecting the reply


class ModbusError(Exception):
    pass


class ModbusTimeout(ModbusError):
    """No complete reply within the response timeout (after all retries)."""


class ModbusCRCError(ModbusError):
    """A reply arrived whose CRC does not match (after all retries)."""


class ModbusFrameError(ModbusError):
    """A reply with a valid CRC that is not the answer to our request."""


class ModbusException(ModbusError):
    """The slave answered with an exception response; args[0] is its code."""


# CRC-16/MODBUS, four bits at a time: a 16-entry table is faster than the
# bitwise loop (5x) and than a 256-entry table on MicroPython (benchmarks/bench_hw).
def _nibble_table():
    t = []
    for i in range(16):
        c = i
        for _ in range(4):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t.append(c)
    return tuple(t)


_CRC4 = _nibble_table()


def crc16(buf, n=-1, start=0):
    """CRC-16/MODBUS of buf[start:start+n] (n=-1: to the end), as an int.

    On the wire the low byte goes first."""
    if n < 0:
        n = len(buf) - start
    t = _CRC4
    crc = 0xFFFF
    for i in range(start, start + n):
        crc ^= buf[i]
        crc = (crc >> 4) ^ t[crc & 15]
        crc = (crc >> 4) ^ t[crc & 15]
    return crc


def decode_f32(buf, offset):
    """IEEE-754 float32 from two registers, high word first (big-endian)."""
    return struct.unpack_from(">f", buf, offset)[0]


def char_time_us(baud):
    """Time of one RTU character (11 bits) in microseconds."""
    return (_BITS_PER_CHAR * 1000000 + baud - 1) // baud


def frame_gap_us(baud):
    """The 3.5-character inter-frame silence t3.5 in microseconds.

    Serial Line §2.5.1.1: 3.5 character times up to 19200 baud; above that a
    fixed 1750 us, since the formula would ask UARTs for ever shorter timers."""
    if baud > 19200:
        return 1750
    return (_BITS_PER_CHAR * 3500000 + baud - 1) // baud


def build_read(buf, unit, fc, address, count):
    """Write an 8-byte read request into buf; returns 8."""
    buf[0] = unit
    buf[1] = fc
    buf[2] = address >> 8
    buf[3] = address & 0xFF
    buf[4] = count >> 8
    buf[5] = count & 0xFF
    crc = crc16(buf, 6)
    buf[6] = crc & 0xFF
    buf[7] = crc >> 8
    return 8


def check_reply(buf, n, unit, fc, count):
    """Validate a complete reply of n bytes in buf; raise the matching error.

    Returns the offset of the first data byte (always 3)."""
    if n < 5:
        raise ModbusFrameError("short reply")
    crc = crc16(buf, n - 2)
    if buf[n - 2] != (crc & 0xFF) or buf[n - 1] != (crc >> 8):
        raise ModbusCRCError("bad CRC")
    if buf[0] != unit:
        raise ModbusFrameError("reply from unit %d" % buf[0])
    if buf[1] == (fc | 0x80):
        raise ModbusException(buf[2])
    if buf[1] != fc or buf[2] != 2 * count or n != 5 + 2 * count:
        raise ModbusFrameError("reply does not match the request")
    return 3


class ModbusMaster:
    """One RTU master on one serial line; one request at a time.

    port      the non-blocking port described at the top of this module
    baud      line speed, for the inter-frame gap and transmission times
    timeout_ms  how long a slave may take to start answering, counted after
              our request and its expected reply have had time to cross the
              wire at `baud`
    retries   further attempts after a timeout or a bad/unmatched reply; an
              exception response is an answer and is never retried
    ticks     the ms clock (compat.ticks_ms); sleep_ms an async function
              sleeping n ms (default asyncio.sleep). Tests pass a fake clock
              and a sleep that advances it.
    """

    def __init__(self, port, baud=9600, timeout_ms=200, retries=2, ticks=ticks_ms, sleep_ms=None):
        self.port = port
        self._sleep_ms = sleep_ms
        self.baud = baud
        self.timeout_ms = timeout_ms
        self.retries = retries
        self._ticks = ticks
        self.char_us = char_time_us(baud)
        self.gap_us = frame_gap_us(baud)
        self.gap_ms = (self.gap_us + 999) // 1000
        self._tx = bytearray(8)
        self._rx = bytearray(_RX_SIZE)
        self._rxv = memoryview(self._rx)
        self._drain = bytearray(32)
        self._state = _IDLE
        self._last_io = ticks() - self.gap_ms  # bus assumed quiet at start
        # statistics, for logs and the bench console
        self.requests = 0
        self.timeouts = 0
        self.crc_errors = 0
        self.frame_errors = 0
        self.exceptions = 0

    # -- sans-I/O core ---------------------------------------------------

    def start(self, unit, fc, address, count):
        """Arm one read; poll() then runs it. Raises ValueError on bad input."""
        if fc != FC_READ_HOLDING and fc != FC_READ_INPUT:
            raise ValueError("function code")
        if not 1 <= count <= MAX_REGISTERS or not 0 <= address <= 0xFFFF or not 1 <= unit <= 247:
            raise ValueError("unit, address or count")
        self._unit = unit
        self._fc = fc
        self._count = count
        self._expect = 5 + 2 * count
        self._attempts = self.retries + 1
        build_read(self._tx, unit, fc, address, count)
        self._state = _GAP

    def busy(self):
        return self._state != _IDLE

    def poll(self):
        """Advance the armed read. Returns None while it runs, then a
        memoryview of the 2*count register bytes (valid until the next
        start()), or raises a ModbusError."""
        state = self._state
        if state == _GAP:
            return self._poll_gap()
        if state == _WAIT:
            return self._poll_wait()
        raise ValueError("no request armed")

    def wait_hint_ms(self):
        """How long the caller may sleep before poll() has something to do."""
        if self._state == _GAP:
            left = self.gap_ms - ticks_diff(self._ticks(), self._last_io)
            return left if left > 1 else 1
        # half the time the missing bytes need on the wire, 1..20 ms
        missing = self._expect - self._got
        ms = (missing * self.char_us) // 2000
        return 1 if ms < 1 else (20 if ms > 20 else ms)

    def _poll_gap(self):
        now = self._ticks()
        # Anything still arriving (a late reply to an earlier try, noise)
        # resets the silence the next request must be preceded by.
        if self._discard_input():
            self._last_io = now
            return None
        if ticks_diff(now, self._last_io) < self.gap_ms:
            return None
        self.port.write(self._tx)
        self.requests += 1
        self._sent = now
        self._last_io = now
        self._got = 0
        # Allow for our 8 bytes and the reply crossing the wire.
        wire_ms = ((8 + self._expect) * self.char_us + 999) // 1000
        self._deadline = self.timeout_ms + wire_ms
        self._state = _WAIT
        return None

    def _poll_wait(self):
        now = self._ticks()
        got = self._got
        n = self.port.readinto(self._rxv[got : self._expect])
        if n:
            got += n
            self._got = got
            self._last_io = now
            # An exception reply is 5 bytes: stop waiting for the long one.
            if got >= 2 and self._rx[1] == (self._fc | 0x80):
                self._expect = 5
            if got >= self._expect:
                return self._finish(now)
        if ticks_diff(now, self._sent) >= self._deadline:
            self.timeouts += 1
            return self._retry(ModbusTimeout("no reply from unit %d" % self._unit), now)
        return None

    def _finish(self, now):
        try:
            off = check_reply(self._rx, self._got, self._unit, self._fc, self._count)
        except ModbusException:
            self.exceptions += 1
            self._state = _IDLE
            raise
        except ModbusCRCError as e:
            self.crc_errors += 1
            return self._retry(e, now)
        except ModbusFrameError as e:
            self.frame_errors += 1
            return self._retry(e, now)
        self._state = _IDLE
        return self._rxv[off : off + 2 * self._count]

    def _retry(self, err, now):
        self._attempts -= 1
        if self._attempts <= 0:
            self._state = _IDLE
            raise err
        self._last_io = now
        self._state = _GAP
        return None

    def _discard_input(self):
        got = False
        for _ in range(8):  # bounded: a babbling line must not stall us
            n = self.port.readinto(self._drain)
            if not n:
                return got
            got = True
        return got

    # -- drivers of the loop ----------------------------------------------

    async def read(self, unit, fc, address, count):
        """Read `count` registers; returns a memoryview of their bytes
        (big-endian pairs), valid until the next request on this master."""
        sleep = self._sleep_ms
        if sleep is None:
            sleep = _asyncio_sleep_ms
        self.start(unit, fc, address, count)
        while True:
            regs = self.poll()
            if regs is not None:
                return regs
            await sleep(self.wait_hint_ms())


async def _asyncio_sleep_ms(ms):
    import asyncio

    await asyncio.sleep(ms / 1000)


class Rs485Port:
    """A port for half-duplex RS-485 transceivers (MAX485 class) whose
    driver-enable (DE, tied to /RE) is a GPIO: high while sending.

    uart must be a machine.UART; its flush() (MicroPython >= 1.20) waits
    until the last bit has left. Without flush() we wait the computed time.
    """

    def __init__(self, uart, de_pin, baud):
        self.uart = uart
        self.de = de_pin
        self.char_us = char_time_us(baud)
        de_pin.value(0)

    def write(self, buf):
        import time

        self.de.value(1)
        n = self.uart.write(buf)
        flush = getattr(self.uart, "flush", None)
        if flush is not None:
            flush()
        else:
            time.sleep_us(len(buf) * self.char_us + self.char_us)
        self.de.value(0)
        return n

    def readinto(self, buf):
        return self.uart.readinto(buf)
