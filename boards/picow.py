# Raspberry Pi Pico W (RP2040 + CYW43) charger controller.
#
# UART0 on GP0/GP1 to the meter's MAX485 (DE/RE on GP2), UART1 on GP4/GP5 to
# the PN532 (HSU). The pilot is PWM slice 2 on GP20 and ADC0 on GP26. GP23,
# GP24, GP25 and GP29 belong to the wireless chip and are left alone.
from boards.base import build_mcu
from boards.base import mcu_reset as reset  # noqa: F401 (firmware/main.py: reboots)
from boards.base import wifi_up as network_up  # noqa: F401 (firmware/main.py: config["wifi"])

PINS = {
    "relay": 15,
    "relay_fb": 14,  # to GND, pull-up: closed reads 0
    "lock_a": 16,
    "lock_b": 17,
    "lock_fb": 18,  # to GND, pull-up: locked reads 0
    "cp_pwm": 20,
    "cp_adc": 26,  # ADC0
    "meter_tx": 0,  # UART0
    "meter_rx": 1,
    "meter_de": 2,
    "rfid_tx": 4,  # UART1
    "rfid_rx": 5,
}

ZERO_RAW = 32768  # -12..+12 V onto 0..3.3 V
MV_PER_KCOUNT = 366


def build(config):
    return build_mcu(config, PINS, 0, 1, ZERO_RAW, MV_PER_KCOUNT)
