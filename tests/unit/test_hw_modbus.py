import unittest

from firmware.hw import modbus
from firmware.hw.modbus import (
    ModbusCRCError,
    ModbusException,
    ModbusFrameError,
    ModbusMaster,
    ModbusTimeout,
)
from tests.hwfakes import ScriptedUART, crc16_bitwise
from tests.support import FakeClock


def with_crc(body):
    crc = modbus.crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def reply_regs(unit, fc, words):
    body = bytearray((unit, fc, 2 * len(words)))
    for w in words:
        body.append(w >> 8)
        body.append(w & 0xFF)
    return with_crc(body)


class CrcTest(unittest.TestCase):
    def test_known_vectors(self):
        # CRC-16/MODBUS check value for "123456789"
        self.assertEqual(modbus.crc16(b"123456789"), 0x4B37)
        # the SDM630 "read L1 voltage" request: 01 04 00 00 00 02 71 CB
        self.assertEqual(modbus.crc16(b"\x01\x04\x00\x00\x00\x02"), 0xCB71)
        # read 10 holding registers from unit 1: 01 03 00 00 00 0A C5 CD
        self.assertEqual(modbus.crc16(b"\x01\x03\x00\x00\x00\x0a"), 0xCDC5)
        self.assertEqual(modbus.crc16(b""), 0xFFFF)

    def test_nibble_table_matches_bitwise(self):
        data = bytes((i * 37 + 11) & 0xFF for i in range(300))
        for n in (0, 1, 2, 7, 8, 255, 300):
            self.assertEqual(modbus.crc16(data, n), crc16_bitwise(data, n))

    def test_crc_over_a_window(self):
        buf = b"xx\x01\x04\x00\x00\x00\x02yy"
        self.assertEqual(modbus.crc16(buf, 6, 2), 0xCB71)

    def test_a_frame_with_its_crc_checks_to_zero(self):
        frame = with_crc(b"\x11\x03\x06\xae\x41\x56\x52\x43\x40")
        self.assertEqual(modbus.crc16(frame), 0)


class CodecTest(unittest.TestCase):
    def test_build_read_request(self):
        buf = bytearray(8)
        self.assertEqual(modbus.build_read(buf, 1, 4, 0x0000, 2), 8)
        self.assertEqual(bytes(buf), b"\x01\x04\x00\x00\x00\x02\x71\xcb")
        modbus.build_read(buf, 0x11, 3, 0x006B, 3)
        self.assertEqual(bytes(buf[:6]), b"\x11\x03\x00\x6b\x00\x03")

    def test_float32_high_word_first(self):
        self.assertEqual(modbus.decode_f32(b"\x43\x66\x00\x00", 0), 230.0)
        self.assertEqual(modbus.decode_f32(b"\x00\x3f\x80\x00\x00", 1), 1.0)
        self.assertEqual(modbus.decode_f32(b"\xc2\xc8\x00\x00", 0), -100.0)
        self.assertAlmostEqual(modbus.decode_f32(b"\x42\x48\x00\x00", 0), 50.0)

    def test_timing_from_baud_rate(self):
        # 11 bits per character; t3.5 fixed at 1750 us above 19200 baud
        self.assertEqual(modbus.char_time_us(9600), 1146)
        self.assertEqual(modbus.frame_gap_us(9600), 4011)
        self.assertEqual(modbus.frame_gap_us(19200), 2006)
        self.assertEqual(modbus.frame_gap_us(2400), 16042)
        self.assertEqual(modbus.frame_gap_us(38400), 1750)
        self.assertEqual(modbus.frame_gap_us(115200), 1750)
        self.assertEqual(ModbusMaster(None, baud=9600).gap_ms, 5)
        self.assertEqual(ModbusMaster(None, baud=115200).gap_ms, 2)

    def test_check_reply(self):
        good = reply_regs(1, 4, [0x4366, 0])
        self.assertEqual(modbus.check_reply(good, len(good), 1, 4, 2), 3)
        bad = bytearray(good)
        bad[4] ^= 1
        with self.assertRaises(ModbusCRCError):
            modbus.check_reply(bad, len(bad), 1, 4, 2)
        with self.assertRaises(ModbusFrameError):
            modbus.check_reply(good, len(good), 2, 4, 2)  # other unit
        with self.assertRaises(ModbusFrameError):
            modbus.check_reply(good, len(good), 1, 3, 2)  # other function
        with self.assertRaises(ModbusFrameError):
            modbus.check_reply(good, len(good), 1, 4, 1)  # other count
        exc = with_crc(b"\x01\x84\x02")
        with self.assertRaises(ModbusException) as ctx:
            modbus.check_reply(exc, 5, 1, 4, 2)
        self.assertEqual(ctx.exception.args[0], modbus.EXC_ILLEGAL_ADDRESS)

    def test_start_refuses_what_the_protocol_cannot_carry(self):
        m = ModbusMaster(ScriptedUART())
        for args in ((1, 6, 0, 1), (1, 4, 0, 0), (1, 4, 0, 126), (0, 4, 0, 1), (248, 4, 0, 1), (1, 4, 0x10000, 1)):
            with self.assertRaises(ValueError):
                m.start(*args)
        with self.assertRaises(ValueError):
            m.poll()  # nothing armed


def run(master, clock, step=1, limit=10000):
    """Poll until a result or an error, advancing the fake clock."""
    for _ in range(limit):
        r = master.poll()
        if r is not None:
            return bytes(r)
        clock.advance(step)
    raise AssertionError("no result")


class MasterTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(1000)

    def master(self, reply, **kw):
        self.port = ScriptedUART(reply, self.clock)
        return ModbusMaster(self.port, baud=9600, ticks=self.clock, **kw)

    def test_reads_registers(self):
        m = self.master(lambda req: reply_regs(1, 4, [0x4366, 0x0000]))
        m.start(1, 4, 0, 2)
        self.assertEqual(run(m, self.clock), b"\x43\x66\x00\x00")
        self.assertEqual(self.port.writes[0][1], b"\x01\x04\x00\x00\x00\x02\x71\xcb")
        self.assertEqual((m.requests, m.timeouts, m.crc_errors), (1, 0, 0))
        self.assertFalse(m.busy())

    def test_reply_arriving_in_pieces(self):
        m = self.master(None)
        m.start(1, 4, 0, 2)
        self.assertIsNone(m.poll())  # sends
        whole = reply_regs(1, 4, [1, 2])
        for i in range(len(whole)):
            self.port.feed(whole[i : i + 1])
            r = m.poll()
        self.assertEqual(bytes(r), b"\x00\x01\x00\x02")

    def test_timeout_is_retried_then_raised(self):
        m = self.master(None, timeout_ms=100, retries=2)
        m.start(1, 4, 0, 2)
        with self.assertRaises(ModbusTimeout):
            run(m, self.clock)
        self.assertEqual(len(self.port.writes), 3)
        self.assertEqual(m.timeouts, 3)
        # each try waits timeout_ms plus the time 8 + 9 characters take at
        # 9600 baud (20 ms), then the inter-frame gap (5 ms) before the next
        t = [w[0] for w in self.port.writes]
        self.assertEqual(t[1] - t[0], 120 + 5)
        self.assertEqual(t[2] - t[1], 120 + 5)

    def test_bad_crc_is_retried(self):
        replies = [bytearray(reply_regs(1, 4, [7, 8])), reply_regs(1, 4, [7, 8])]
        replies[0][-1] ^= 0xFF

        m = self.master(lambda req: bytes(replies.pop(0)))
        m.start(1, 4, 0, 2)
        self.assertEqual(run(m, self.clock), b"\x00\x07\x00\x08")
        self.assertEqual((m.requests, m.crc_errors), (2, 1))

    def test_bad_crc_every_time_raises_crc_error(self):
        def corrupt(req):
            r = bytearray(reply_regs(1, 4, [7, 8]))
            r[3] ^= 0x10
            return bytes(r)

        m = self.master(corrupt, retries=1)
        m.start(1, 4, 0, 2)
        with self.assertRaises(ModbusCRCError):
            run(m, self.clock)
        self.assertEqual(m.crc_errors, 2)

    def test_exception_response_is_an_answer(self):
        m = self.master(lambda req: with_crc(b"\x01\x84\x02"))
        m.start(1, 4, 0x1000, 2)
        with self.assertRaises(ModbusException) as ctx:
            run(m, self.clock)
        self.assertEqual(ctx.exception.args[0], 2)
        self.assertEqual(len(self.port.writes), 1)  # not retried
        self.assertEqual(m.exceptions, 1)

    def test_reply_from_another_unit_is_a_frame_error(self):
        m = self.master(lambda req: reply_regs(9, 4, [1, 2]), retries=0)
        m.start(1, 4, 0, 2)
        with self.assertRaises(ModbusFrameError):
            run(m, self.clock)

    def test_late_reply_is_discarded_before_the_retry(self):
        # The first reply comes after the timeout: it must not be taken as
        # the answer to the retry, and the retry must wait for silence.
        m = self.master(None, timeout_ms=50, retries=1)
        m.start(1, 4, 0, 2)
        m.poll()  # sent
        self.clock.advance(75)
        self.assertIsNone(m.poll())  # timed out, retry armed
        self.port.feed(reply_regs(1, 4, [0xDEAD, 0xBEEF]))  # the late one
        self.port.reply = lambda req: reply_regs(1, 4, [1, 1])
        self.assertIsNone(m.poll())  # drains the late reply
        self.assertEqual(len(self.port.writes), 1)
        self.assertEqual(run(m, self.clock), b"\x00\x01\x00\x01")
        self.assertEqual(self.port.writes[1][0] - self.port.writes[0][0] >= 75 + 5, True)

    def test_requests_keep_the_inter_frame_gap(self):
        m = self.master(lambda req: reply_regs(1, 4, [1]))
        for _ in range(3):
            m.start(1, 4, 0, 1)
            run(m, self.clock)
        t = [w[0] for w in self.port.writes]
        # the reply ends when it is read; the next request waits t3.5 (5 ms)
        self.assertGreaterEqual(t[1] - t[0], 5)
        self.assertGreaterEqual(t[2] - t[1], 5)

    def test_wait_hint_follows_the_missing_bytes(self):
        m = self.master(None)
        m.start(1, 4, 0, 40)  # 85-byte reply: ~97 ms at 9600 baud
        m.poll()
        self.assertEqual(m.wait_hint_ms(), 20)  # capped
        self.port.feed(reply_regs(1, 4, [0] * 40)[:80])
        m.poll()
        self.assertEqual(m.wait_hint_ms(), 2)

    def test_read_coroutine(self):
        try:
            import asyncio
        except ImportError:
            self.skipTest("no asyncio")
        from tests.hwfakes import StepClock

        clock = StepClock()
        port = ScriptedUART(lambda req: reply_regs(1, 3, [0x1234]), clock)
        m = ModbusMaster(port, ticks=clock)
        got = asyncio.run(m.read(1, 3, 0x0014, 1))
        self.assertEqual(bytes(got), b"\x12\x34")


class Rs485PortTest(unittest.TestCase):
    def test_direction_pin_high_only_while_sending(self):
        from firmware.hw.sim import SimPin
        from tests.hwfakes import FakeMachineUART

        levels = []
        de = SimPin(0)
        uart = FakeMachineUART(1)
        uart.flush = lambda: levels.append(de.level)
        port = modbus.Rs485Port(uart, de, 9600)
        port.write(b"\x01\x02")
        self.assertEqual(levels, [1])
        self.assertEqual(de.level, 0)
        self.assertEqual(bytes(uart.written), b"\x01\x02")
