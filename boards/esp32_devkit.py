# Generic ESP32 DevKitC (ESP32-WROOM-32) charger controller.
#
# UART0 stays the USB console (REPL, bench console). The meter hangs on a
# MAX485-class transceiver on UART2 with its DE/RE on a GPIO; the PN532 on
# UART1 (HSU, 115200). The pilot is LEDC PWM into the +-12 V stage and ADC1
# (usable while Wi-Fi runs, unlike ADC2) on the divided-down pilot. Strapping
# pins (0, 2, 5, 12, 15) and the flash pins (6-11) are left alone.
from boards.base import build_mcu
from boards.base import mcu_reset as reset  # noqa: F401 (firmware/main.py: reboots)
from boards.base import wifi_up as network_up  # noqa: F401 (firmware/main.py: config["wifi"])

PINS = {
    "relay": 26,  # contactor coil driver (high = energised)
    "relay_fb": 27,  # auxiliary contact to GND, pull-up: closed reads 0
    "lock_a": 32,  # H-bridge input A: drive toward locked
    "lock_b": 33,  # H-bridge input B: drive toward unlocked
    "lock_fb": 25,  # lock switch to GND, pull-up: locked reads 0
    "cp_pwm": 13,  # 1 kHz PWM into the pilot's +-12 V amplifier
    "cp_adc": 36,  # SENSOR_VP, ADC1 channel 0: pilot through divider
    "meter_tx": 17,  # UART2 TX -> MAX485 DI
    "meter_rx": 16,  # UART2 RX <- MAX485 RO
    "meter_de": 4,  # MAX485 DE and /RE tied together
    "rfid_tx": 19,  # UART1 TX -> PN532 RXD (HSU mode: SEL0=L, SEL1=L)
    "rfid_rx": 18,  # UART1 RX <- PN532 TXD
}

# Pilot divider: -12..+12 V onto 0..3.3 V, 0 V at mid-scale.
ZERO_RAW = 32768
MV_PER_KCOUNT = 366  # 24 V over 65535 counts


def build(config):
    return build_mcu(config, PINS, 2, 1, ZERO_RAW, MV_PER_KCOUNT, adc_atten="ATTN_11DB")
