# The simulated charger for the MicroPython unix port (and CPython): the host
# board's parts (firmware/hw/sim.py) with the meter answering real Modbus RTU
# frames from an in-process slave instead of pymodbus over a pty, so nothing
# outside firmware/ and boards/ is needed. Runs the whole agent under the
# `micropython` binary:
#
#   micropython -m firmware --board unix --csms ws://127.0.0.1:8180/ocpp \
#       --id CP1 --state-dir state --console tcp:127.0.0.1:7001
#
# "hw" keys: those of boards/base.py plus sim_demand_a (A the EV asks for).
from boards import host


def build(config):
    cfg = dict(config or {})
    hw = dict(cfg.get("hw") or {})
    if hw.get("sim_meter_link", "inproc") != "inproc":
        raise ValueError("the unix board's meter is in-process (sim_meter_link inproc)")
    hw["sim_meter_link"] = "inproc"
    cfg["hw"] = hw
    return host.build(cfg)
