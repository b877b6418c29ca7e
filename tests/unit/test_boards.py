# Board files build the right drivers on the right pins and UARTs. The
# MicroPython boards are built against a stand-in `machine` module, on both
# runtimes; the host and Raspberry Pi boards need CPython.
import sys
import unittest

from firmware.hw.lock import ConnectorLock
from firmware.hw.meters import Meter
from firmware.hw.modbus import Rs485Port
from firmware.hw.pilot import Pilot
from firmware.hw.relay import Contactor
from firmware.hw.rfid import Pn532Reader
from tests.hwfakes import FakeMachineUART, install_fake_machine
from tests.support import CPYTHON_ONLY, IS_MICROPYTHON


class McuBoardTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(install_fake_machine())

    def check_common(self, d):
        self.assertIsInstance(d["relay"], Contactor)
        self.assertIsInstance(d["lock"], ConnectorLock)
        self.assertIsInstance(d["pilot"], Pilot)
        self.assertIsInstance(d["rfid"], Pn532Reader)
        self.assertIsInstance(d["meter"], Meter)
        self.assertIsInstance(d["modbus"].port, Rs485Port)
        self.assertEqual(d["relay"].closed_level, 0)  # switch to GND, pull-up
        self.assertEqual(d["pilot"].pwm.hz, 1000)

    def test_esp32_devkit(self):
        from boards import esp32_devkit

        d = esp32_devkit.build({})
        self.check_common(d)
        self.assertEqual(d["relay"].coil.id, 26)
        self.assertEqual(d["relay"].feedback.id, 27)
        self.assertEqual(d["relay"].feedback.pull, 1)
        uart = d["modbus"].port.uart
        self.assertEqual((uart.id, uart.baudrate, uart.kw["timeout"]), (2, 9600, 0))
        self.assertEqual((uart.kw["tx"].id, uart.kw["rx"].id), (17, 16))
        self.assertEqual(d["modbus"].port.de.id, 4)
        self.assertEqual((d["rfid"].uart.id, d["rfid"].uart.baudrate), (1, 115200))
        self.assertEqual(d["pilot"].sampler.adc.pin.id, 36)
        self.assertEqual(d["pilot"].sampler.adc.atten, 3)
        self.assertEqual(d["meter"].model["name"], "SDM630")

    def test_picow_with_settings(self):
        from boards import picow

        cfg = {
            "hw": {
                "meter": "SDM120",
                "meter_unit": 5,
                "meter_baud": 2400,
                "lock": "hold",
                "rfid": "none",
                "pins": {"relay": 3},
                "pilot_zero_raw": 30000,
            }
        }
        d = picow.build(cfg)
        self.assertEqual(d["relay"].coil.id, 3)
        self.assertIsNone(d["rfid"])
        self.assertIsNone(d["lock"].unlock_pin)
        self.assertEqual((d["meter"].unit, d["meter"].model["name"]), (5, "SDM120"))
        self.assertEqual(d["modbus"].gap_ms, 17)  # 2400 baud
        self.assertEqual(d["modbus"].port.uart.id, 0)
        self.assertEqual(d["pilot"].sampler.zero_raw, 30000)
        self.assertEqual(d["pilot"].sampler.adc.pin.id, 26)

    def test_parts_can_be_left_out(self):
        from boards import esp32_devkit

        d = esp32_devkit.build({"hw": {"meter": "none", "lock": "none", "relay_feedback": False}})
        self.assertIsNone(d["meter"])
        self.assertIsNone(d["modbus"])
        self.assertIsNone(d["lock"])
        self.assertIsNone(d["relay"].feedback)

    def test_bad_settings_are_refused(self):
        from boards import esp32_devkit

        for hw in ({"meter": "XYZ1"}, {"relya": 1}, {"pins": {"nope": 3}}):
            with self.assertRaises(ValueError):
                esp32_devkit.build({"hw": hw})

    def test_the_drivers_work_on_the_fake_pins(self):
        from boards import esp32_devkit

        d = esp32_devkit.build({})
        relay = d["relay"]
        relay.close()
        self.assertEqual(relay.coil.level, 1)
        relay.feedback.level = 0  # aux contact pulls to GND: closed
        self.assertEqual(relay.poll(), "closed")
        d["pilot"].set_current(16)
        self.assertEqual(d["pilot"].pwm.duty, (267 * 65535 + 500) // 1000)
        d["modbus"].start(1, 4, 0, 2)
        d["modbus"].poll()
        self.assertEqual(bytes(d["modbus"].port.uart.written), b"\x01\x04\x00\x00\x00\x02\x71\xcb")
        self.assertEqual(d["modbus"].port.de.level, 0)


@unittest.skipIf(IS_MICROPYTHON, CPYTHON_ONLY)
class LinuxBoardTest(unittest.TestCase):
    def test_rpi_with_fake_periphery_and_serial(self):
        made = []

        class GPIO:
            def __init__(self, path, line, direction, bias="default"):
                made.append(("gpio", line, direction, bias))
                self.v = direction == "high"

            def read(self):
                return self.v

            def write(self, v):
                self.v = v

        class PWM:
            def __init__(self, chip, channel):
                made.append(("pwm", chip, channel))

            def enable(self):
                self.enabled = True

        class SPI:
            def __init__(self, path, mode, speed):
                made.append(("spi", path))

            def transfer(self, data):
                return [0, 0x02, 0x00]  # 512 of 1023: mid-scale

        class Periphery:
            pass

        Periphery.GPIO, Periphery.PWM, Periphery.SPI = GPIO, PWM, SPI

        class Serial:
            @staticmethod
            def serial_for_url(url, baudrate, timeout):
                made.append(("serial", url, baudrate, timeout))
                return FakeMachineUART(url, baudrate)

        saved = {k: sys.modules.get(k) for k in ("periphery", "serial")}
        sys.modules["periphery"] = Periphery
        sys.modules["serial"] = Serial
        try:
            from boards import rpi

            d = rpi.build({"hw": {"meter_port": "socket://meter:502"}})
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        self.assertIn(("serial", "socket://meter:502", 9600, 0), made)
        self.assertIn(("serial", "/dev/serial0", 115200, 0), made)
        self.assertIn(("gpio", 17, "low", "default"), made)
        self.assertIn(("gpio", 27, "in", "pull_up"), made)
        self.assertIn(("pwm", 0, 0), made)
        self.assertEqual(d["pilot"].pwm.pwm.frequency, 1000)
        d["pilot"].set_current(32)
        self.assertAlmostEqual(d["pilot"].pwm.pwm.duty_cycle, 0.533, places=3)
        self.assertEqual(d["pilot"].sampler.measure(), (0, 0))  # mid-scale is 0 V
        self.assertIs(type(d["meter"].master.port), FakeMachineUART)  # no RS-485 wrapper: auto direction
        d["relay"].close()
        self.assertTrue(d["relay"].coil.gpio.v)

    def test_host_board_inproc(self):
        from boards import host

        d = host.build({"hw": {"sim_meter_link": "inproc", "meter": "SDM120"}})
        try:
            self.assertEqual(d["sim"].model["name"], "SDM120")
            self.assertTrue(d["sim"].inject("weld"))
        finally:
            d["close"]()
