import unittest

from firmware.hw import EV_CLEARED, EV_FAULT, F_READER_FAILED, rfid
from firmware.hw.rfid import Pn532Reader
from firmware.hw.sim import FakePn532
from tests.support import FakeClock


class FrameTest(unittest.TestCase):
    def test_build_frame(self):
        buf = bytearray(16)
        n = rfid.build_frame(buf, rfid.CMD_GET_FIRMWARE_VERSION, b"")
        self.assertEqual(bytes(buf[:n]), b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00")
        n = rfid.build_frame(buf, rfid.CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00")
        self.assertEqual(bytes(buf[:n]), b"\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00")
        n = rfid.build_frame(buf, rfid.CMD_SAM_CONFIGURATION, b"\x01\x14\x01")
        self.assertEqual(bytes(buf[:n]), b"\x00\x00\xff\x05\xfb\xd4\x14\x01\x14\x01\x02\x00")

    def test_parse_frame(self):
        self.assertEqual(rfid.parse_frame(rfid.ACK, 6)[0], 1)
        fw = b"\x00\x00\xff\x06\xfa\xd5\x03\x32\x01\x06\x07\xe8\x00"
        self.assertEqual(rfid.parse_frame(fw, len(fw)), (2, 5, 11))
        self.assertEqual(rfid.parse_frame(b"\x12\x34" + fw, len(fw) + 2), (2, 7, 13))  # noise first
        self.assertEqual(rfid.parse_frame(fw, 9)[0], 0)  # incomplete
        self.assertEqual(rfid.parse_frame(b"\x00\x00", 2)[0], 0)
        bad = bytearray(fw)
        bad[11] ^= 1
        self.assertEqual(rfid.parse_frame(bad, len(bad))[0], 3)  # data checksum
        bad = bytearray(fw)
        bad[4] ^= 1
        self.assertEqual(rfid.parse_frame(bad, len(bad))[0], 3)  # length checksum
        err = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
        self.assertEqual(rfid.parse_frame(err, len(err))[0], 3)


class ReaderTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock(0)
        self.chip = FakePn532()
        self.reader = Pn532Reader(self.chip, poll_ms=200, timeout_ms=100, ticks=self.clock)

    def run_for(self, ms, step=10):
        events = []
        for _ in range(ms // step):
            e = self.reader.poll()
            if e is not None:
                events.append(e)
            self.clock.advance(step)
        return events

    def test_wakes_and_configures_the_chip(self):
        self.assertFalse(self.chip.awake)
        self.run_for(100)
        self.assertTrue(self.chip.awake)
        self.assertEqual(self.chip.commands[:4], [0x14, 0x02, 0x32, 0x4A])
        self.assertEqual(self.reader.firmware, (0x32, 1, 6))
        self.assertIsNone(self.reader.fault)

    def test_card_reported_once_per_presentation(self):
        self.run_for(300)
        self.chip.present(b"\x04\xa1\xb2\xc3")
        self.assertEqual(self.run_for(1000), ["04A1B2C3"])
        self.assertEqual(self.reader.uid, "04A1B2C3")
        self.chip.remove()
        self.assertEqual(self.run_for(1000), [])
        self.assertIsNone(self.reader.uid)
        self.chip.present(b"\x04\xa1\xb2\xc3")
        self.assertEqual(self.run_for(500), ["04A1B2C3"])

    def test_seven_byte_uid_and_a_card_swap(self):
        self.chip.present(b"\x04\x11\x22\x33\x44\x55\x66")
        self.assertEqual(self.run_for(300), ["04112233445566"])
        self.chip.present(b"\xde\xad\xbe\xef")
        self.assertEqual(self.run_for(300), ["DEADBEEF"])

    def test_search_pace(self):
        self.run_for(2000)
        searches = self.chip.commands.count(0x4A)
        self.assertTrue(9 <= searches <= 11, searches)  # one per poll_ms

    def test_dead_reader_is_a_fault_and_recovers(self):
        self.run_for(300)
        self.chip.dead = True
        self.chip.awake = False
        events = self.run_for(1000)
        self.assertEqual(events, [EV_FAULT])
        self.assertEqual(self.reader.fault, F_READER_FAILED)
        self.assertEqual(self.run_for(3000), [])  # keeps trying, reports once
        self.chip.dead = False
        self.chip.present(b"\x01\x02\x03\x04")
        events = self.run_for(2000)
        self.assertEqual(events, [EV_CLEARED, "01020304"])
        self.assertIsNone(self.reader.fault)
        self.assertTrue(self.chip.awake)  # woken again

    def test_one_garbled_answer_is_not_a_fault(self):
        self.run_for(300)
        self.chip.garble = 1
        self.chip.present(b"\x0a\x0b\x0c\x0d")
        self.assertEqual(self.run_for(1000), ["0A0B0C0D"])
        self.assertIsNone(self.reader.fault)

    def test_something_that_is_not_a_pn532(self):
        class Other(FakePn532):
            def _handle(self, f):
                if f[6] == 0x02:
                    self._out.put(rfid.ACK)
                    self._out.put(b"\x00\x00\xff\x06\xfa\xd5\x03\x31\x01\x06\x07\xe9\x00")
                else:
                    FakePn532._handle(self, f)

        reader = Pn532Reader(Other(), fail_limit=2, ticks=self.clock)
        events = []
        for _ in range(300):
            e = reader.poll()
            if e:
                events.append(e)
            self.clock.advance(10)
        self.assertEqual(events, [EV_FAULT])
        self.assertIsNone(reader.firmware)


class BrokenUART:
    def write(self, buf):
        raise OSError(5)

    def readinto(self, buf):
        raise OSError(5)


class PortFailureTest(unittest.TestCase):
    def test_a_failing_uart_is_a_reader_fault(self):
        clock = FakeClock(0)
        reader = Pn532Reader(BrokenUART(), fail_limit=2, ticks=clock)
        events = []
        for _ in range(300):
            e = reader.poll()
            if e:
                events.append(e)
            clock.advance(10)
        self.assertEqual(events, [EV_FAULT])
