# The emulator's board (CPython): every part simulated (firmware.hw.sim),
# the real drivers on top, and the meter read through real Modbus RTU frames:
# by default over a pseudo-terminal to a pymodbus server simulating the
# configured Eastron meter (host_tools/sim_meter.py), whose power and energy
# follow the simulated contactor and EV.
#
# Extra "hw" keys here:
#   sim_meter_link  "pty" (default: pymodbus over a pty, one thread per
#                   charger) or "inproc" (the same frames to a byte-level
#                   slave in this process: for fleets of emulated chargers)
#   sim_demand_a    current the simulated EV asks for per phase (default 16)
#
# build(config) adds to the drivers:
#   "sim"    the SimBench: fault injection and EV/card actions for the
#            bench console (inject(name, on), plug(), unplug(), ...)
#   "close"  a function that stops the meter server and closes the pty
from boards.base import assemble, settings
from firmware.hw.sim import SimBench


def build(config):
    hw = settings(config)
    given = (config or {}).get("hw") or {}
    link = given.get("sim_meter_link", "pty")
    model = hw["meter"] if hw["meter"] != "none" else "SDM630"
    bench = SimBench(model=model, phases=hw["meter_phases"], unit=hw["meter_unit"],
                     demand_a=float(given.get("sim_demand_a", 16.0)), lock_hold=hw["lock"] == "hold")
    closers = []
    if hw["meter"] != "none" and link == "pty":
        import os

        from host_tools.serial_link import FdPort, open_pty
        from host_tools.sim_meter import SimMeterServer

        master_fd, path, keep = open_pty()
        server = SimMeterServer(path, model, hw["meter_unit"], meter_model=bench.meter, baud=hw["meter_baud"])
        server.start()
        bench.attach_line(FdPort(master_fd))
        bench.meter_server = server
        closers.append(server.stop)
        closers.append(lambda: os.close(master_fd))
        closers.append(lambda: os.close(keep))
    elif link != "inproc" and hw["meter"] != "none":
        raise ValueError("sim_meter_link must be pty or inproc")
    c, lk, pl = bench.contactor, bench.lock, bench.pilot
    d = assemble(
        hw,
        c.coil,
        c.aux,
        lk.lock_pin,
        lk.unlock_pin,
        lk.feedback,
        pl.pwm,
        pl,  # SimPilotHw.measure() is the sampler
        bench.meter_line,
        bench.reader,
    )
    d["sim"] = bench

    def close():
        while closers:
            closers.pop(0)()

    d["close"] = close
    return d
