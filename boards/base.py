# What every board file shares: the hardware settings of config.json and the
# assembly of the drivers from the pins, PWM, ADC and UARTs a board made.
#
# Board files call assemble(); the agent calls board.build(config) and gets
#   {"relay": Contactor, "lock": ConnectorLock or None, "pilot": Pilot,
#    "rfid": Pn532Reader or None, "meter": Meter or None,
#    "modbus": ModbusMaster or None}
# (the host board adds "sim" and "close").
from firmware.hw.lock import ConnectorLock
from firmware.hw.meters import MODELS, Meter
from firmware.hw.modbus import ModbusMaster
from firmware.hw.pilot import AdcSampler, Pilot
from firmware.hw.relay import Contactor
from firmware.hw.rfid import Pn532Reader

# config.json "hw" keys and their defaults (README "config.json keys").
DEFAULTS = {
    "meter": "SDM630",  # a key of firmware.hw.meters.MODELS, or "none"
    "meter_unit": 1,
    "meter_baud": 9600,
    "meter_phases": None,  # None: all the model has
    "meter_timeout_ms": 200,
    "meter_retries": 2,
    "meter_stale_ms": 15000,
    "meter_fail_limit": 3,
    "relay_feedback": True,
    "relay_verify_ms": 300,
    "lock": "motor",  # "motor", "hold" or "none" (tethered cable)
    "lock_pulse_ms": 300,
    "lock_verify_ms": 1000,
    "rfid": "pn532",  # "pn532" or "none"
    "rfid_baud": 115200,
    "meter_port": None,  # Linux boards: device path or pyserial URL of the meter line
    "rfid_port": None,  # Linux boards: device path or pyserial URL of the PN532
    "pilot_zero_raw": None,  # ADC calibration; None: the board's default
    "pilot_mv_per_kcount": None,
    "pins": None,  # {name: number} overriding the board's PINS
}


def settings(config):
    """The board settings: DEFAULTS updated with config["hw"]."""
    hw = dict(DEFAULTS)
    given = (config or {}).get("hw") or {}
    for k in given:
        if k not in DEFAULTS and not k.startswith("sim_"):
            raise ValueError("unknown hw setting: " + k)
        hw[k] = given[k]
    if hw["meter"] != "none" and hw["meter"] not in MODELS:
        raise ValueError("unknown meter: " + str(hw["meter"]))
    return hw


def pins(board_pins, hw):
    """The board's pin map with the config's overrides."""
    p = dict(board_pins)
    if hw["pins"]:
        for k in hw["pins"]:
            if k not in p:
                raise ValueError("unknown pin name: " + k)
            p[k] = hw["pins"][k]
    return p


def calibration(hw, zero_raw, mv_per_kcount):
    z = hw["pilot_zero_raw"]
    k = hw["pilot_mv_per_kcount"]
    return (zero_raw if z is None else z, mv_per_kcount if k is None else k)


def assemble(hw, relay_coil, relay_fb, lock_a, lock_b, lock_fb, pwm, sampler, meter_port, rfid_uart,
             relay_closed_level=1, lock_locked_level=1, ticks=None, sleep_ms=None):
    """Build the drivers. lock_a/lock_b: the lock's two drive pins (lock_b
    unused for a hold actuator); sampler: an object with measure(), or an
    ADC wrapped by the caller in AdcSampler; meter_port/rfid_uart may be
    None when those parts are off."""
    kw = {} if ticks is None else {"ticks": ticks}
    d = {}
    d["relay"] = Contactor(
        relay_coil,
        relay_fb if hw["relay_feedback"] else None,
        verify_ms=hw["relay_verify_ms"],
        closed_level=relay_closed_level,
        **kw
    )
    d["lock"] = None
    if hw["lock"] != "none":
        d["lock"] = ConnectorLock(
            lock_a,
            lock_b if hw["lock"] == "motor" else None,
            lock_fb,
            pulse_ms=hw["lock_pulse_ms"],
            verify_ms=hw["lock_verify_ms"],
            locked_level=lock_locked_level,
            **kw
        )
    d["pilot"] = Pilot(pwm, sampler, **kw)
    d["rfid"] = Pn532Reader(rfid_uart, **kw) if hw["rfid"] == "pn532" and rfid_uart is not None else None
    d["modbus"] = None
    d["meter"] = None
    if hw["meter"] != "none" and meter_port is not None:
        mkw = dict(kw)
        if sleep_ms is not None:
            mkw["sleep_ms"] = sleep_ms
        master = ModbusMaster(
            meter_port, baud=hw["meter_baud"], timeout_ms=hw["meter_timeout_ms"], retries=hw["meter_retries"], **mkw
        )
        d["modbus"] = master
        d["meter"] = Meter(
            master,
            MODELS[hw["meter"]],
            unit=hw["meter_unit"],
            phases=hw["meter_phases"],
            stale_ms=hw["meter_stale_ms"],
            fail_limit=hw["meter_fail_limit"],
            **kw
        )
    return d


def adc_sampler(adc, hw, zero_raw, mv_per_kcount):
    z, k = calibration(hw, zero_raw, mv_per_kcount)
    return AdcSampler(adc, z, k)


def build_mcu(config, board_pins, meter_uart, rfid_uart, zero_raw, mv_per_kcount, adc_atten=None):
    """Drivers for a MicroPython board from its pin map: meter on UART
    `meter_uart` behind an RS-485 transceiver whose DE/RE is pin meter_de,
    PN532 on UART `rfid_uart`, switches to GND with pull-ups (closed/locked
    read 0), pilot PWM at 1 kHz and an ADC on the divided pilot."""
    import machine

    from firmware.hw.modbus import Rs485Port

    hw = settings(config)
    p = pins(board_pins, hw)
    Pin = machine.Pin
    meter_port = None
    if hw["meter"] != "none":
        baud = hw["meter_baud"]
        uart = machine.UART(meter_uart, baudrate=baud, tx=Pin(p["meter_tx"]), rx=Pin(p["meter_rx"]), timeout=0)
        meter_port = Rs485Port(uart, Pin(p["meter_de"], Pin.OUT, value=0), baud)
    reader = None
    if hw["rfid"] != "none":
        reader = machine.UART(
            rfid_uart, baudrate=hw["rfid_baud"], tx=Pin(p["rfid_tx"]), rx=Pin(p["rfid_rx"]), timeout=0
        )
    adc_pin = Pin(p["cp_adc"])
    if adc_atten is None:
        adc = machine.ADC(adc_pin)
    else:
        adc = machine.ADC(adc_pin, atten=getattr(machine.ADC, adc_atten))
    return assemble(
        hw,
        Pin(p["relay"], Pin.OUT, value=0),
        Pin(p["relay_fb"], Pin.IN, Pin.PULL_UP),
        Pin(p["lock_a"], Pin.OUT, value=0),
        Pin(p["lock_b"], Pin.OUT, value=0),
        Pin(p["lock_fb"], Pin.IN, Pin.PULL_UP),
        machine.PWM(Pin(p["cp_pwm"]), freq=1000, duty_u16=65535),
        adc_sampler(adc, hw, zero_raw, mv_per_kcount),
        meter_port,
        reader,
        relay_closed_level=0,
        lock_locked_level=0,
    )


# ---- what firmware/main.py asks of a device board ----------------------------


def mcu_reset(hard):
    """Reset the controller after the agent asked for a reboot: a hard reset
    restarts the chip; a soft reset restarts the interpreter (main.py runs
    again, the heap starts empty) where the port offers it."""
    import machine

    if hard or not hasattr(machine, "soft_reset"):
        machine.reset()
    else:
        machine.soft_reset()


def wifi_up(config, timeout_ms=20000):
    """Join the network of config["wifi"] ({"ssid": ..., "password": ...})
    before the agent starts. Without a "wifi" key nothing is done (boot.py
    brought the network up, or it is wired). Returns whether the station is
    connected; if not, the agent starts anyway and its transport retries
    with back-off while the radio keeps trying."""
    w = (config or {}).get("wifi")
    if not w:
        return None
    import time

    import network

    sta = network.WLAN(network.STA_IF)
    sta.active(True)
    if not sta.isconnected():
        sta.connect(w["ssid"], w.get("password", ""))
        for _ in range(timeout_ms // 100):
            if sta.isconnected():
                break
            time.sleep(0.1)
    return sta.isconnected()
