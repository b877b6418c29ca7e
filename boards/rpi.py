# Raspberry Pi (40-pin models) running the agent on CPython.
#
#   meter  USB-RS485 dongle (automatic direction control) through pyserial
#   PN532  the Pi's own UART (/dev/serial0: GPIO14 TXD, GPIO15 RXD), pyserial
#   GPIO   python-periphery on the GPIO character device (BCM numbers)
#   pilot  hardware PWM0 on GPIO18 (dtoverlay=pwm) into the +-12 V stage; the
#          Pi has no ADC, so the divided pilot goes to an MCP3008-class
#          10-bit SPI ADC on SPI0 CE0, channel 0
#
# Install on the Pi: pip install pyserial python-periphery. Neither is needed
# to run the tests (they are imported in build()).
from boards.base import adc_sampler, assemble, pins, settings

PINS = {
    "relay": 17,
    "relay_fb": 27,  # to GND, pull-up: closed reads 0
    "lock_a": 22,
    "lock_b": 23,
    "lock_fb": 24,  # to GND, pull-up: locked reads 0
    "cp_pwm_chip": 0,  # /sys/class/pwm/pwmchip0 ...
    "cp_pwm_channel": 0,  # ... pwm0 = GPIO18 with dtoverlay=pwm
    "cp_adc_channel": 0,  # MCP3008 input
}
METER_PORT = "/dev/ttyUSB0"
RFID_PORT = "/dev/serial0"
GPIOCHIP = "/dev/gpiochip0"
SPIDEV = "/dev/spidev0.0"

ZERO_RAW = 32768  # -12..+12 V onto 0..3.3 V, 10-bit reading scaled to 16 bits
MV_PER_KCOUNT = 366


class PeripheryPin:
    """machine.Pin-like over a periphery.GPIO."""

    def __init__(self, gpio):
        self.gpio = gpio

    def value(self, v=None):
        if v is None:
            return 1 if self.gpio.read() else 0
        self.gpio.write(bool(v))
        return None


class PeripheryPWM:
    """machine.PWM-like over a periphery.PWM (sysfs)."""

    def __init__(self, pwm):
        self.pwm = pwm
        pwm.frequency = 1000
        pwm.duty_cycle = 1.0
        pwm.enable()

    def freq(self, hz=None):
        if hz is None:
            return self.pwm.frequency
        self.pwm.frequency = hz
        return None

    def duty_u16(self, d=None):
        if d is None:
            return int(self.pwm.duty_cycle * 65535)
        self.pwm.duty_cycle = d / 65535
        return None


class Mcp3008:
    """machine.ADC-like read_u16() from one channel of an MCP3008 on SPI."""

    def __init__(self, spi, channel):
        self.spi = spi
        self.channel = channel

    def read_u16(self):
        r = self.spi.transfer([1, (8 + self.channel) << 4, 0])
        return (((r[1] & 3) << 8) | r[2]) << 6


def build(config):
    import periphery
    import serial

    hw = settings(config)
    p = pins(PINS, hw)

    def out(n):
        return PeripheryPin(periphery.GPIO(GPIOCHIP, n, "low"))

    def switch(n):
        return PeripheryPin(periphery.GPIO(GPIOCHIP, n, "in", bias="pull_up"))

    meter_port = None
    if hw["meter"] != "none":
        meter_port = serial.serial_for_url(hw["meter_port"] or METER_PORT, baudrate=hw["meter_baud"], timeout=0)
    rfid_uart = None
    if hw["rfid"] != "none":
        rfid_uart = serial.serial_for_url(hw["rfid_port"] or RFID_PORT, baudrate=hw["rfid_baud"], timeout=0)
    adc = Mcp3008(periphery.SPI(SPIDEV, 0, 1000000), p["cp_adc_channel"])
    return assemble(
        hw,
        out(p["relay"]),
        switch(p["relay_fb"]),
        out(p["lock_a"]),
        out(p["lock_b"]),
        switch(p["lock_fb"]),
        PeripheryPWM(periphery.PWM(p["cp_pwm_chip"], p["cp_pwm_channel"])),
        adc_sampler(adc, hw, ZERO_RAW, MV_PER_KCOUNT),
        meter_port,
        rfid_uart,
        relay_closed_level=0,
        lock_locked_level=0,
    )
