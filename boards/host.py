# The emulator's board (CPython): every part simulated (firmware.hw.sim),
# the real drivers on top, and the meter read through real Modbus RTU frames:
# by default over a pseudo-terminal to a pymodbus server simulating the
# configured Eastron meter (host_tools/sim_meter.py), whose power and energy
# follow the simulated contactor and EV.
#
# Extra "hw" keys here:
#   sim_meter_link  "pty" (default: pymodbus over a pty, one thread per
#                   charger), "inproc" (the same frames to a byte-level
#                   slave in this process: for fleets of emulated chargers)
#                   or "port" (a meter outside this process on the serial
#                   device or pyserial URL `meter_port`, e.g. a pty to
#                   `make sim-meter` or the chaos harness's meter, which
#                   keeps counting when this process dies)
#   sim_demand_a    current the simulated EV asks for per phase (default 16)
#   sim_coil_fd     a file descriptor that gets b"1" / b"0" each time the
#                   contactor coil is energised / released, so a plant in
#                   another process (the chaos harness's meter) follows the
#                   contactor; when this process dies the descriptor closes,
#                   as a coil drops when its controller loses power
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
    elif link == "port" and hw["meter"] != "none":
        import serial

        if not hw["meter_port"]:
            raise ValueError('sim_meter_link "port" needs meter_port')
        port = serial.serial_for_url(hw["meter_port"], baudrate=hw["meter_baud"], timeout=0)
        port.reset_input_buffer()  # a reply meant for a previous run of the emulator
        bench.attach_line(port)
        closers.append(port.close)
    elif link not in ("inproc", "port") and hw["meter"] != "none":
        raise ValueError("sim_meter_link must be pty, inproc or port")
    c, lk, pl = bench.contactor, bench.lock, bench.pilot
    coil = c.coil
    if given.get("sim_coil_fd") is not None:
        coil = TappedPin(coil, given["sim_coil_fd"])
    d = assemble(
        hw,
        coil,
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


class TappedPin:
    """An output pin whose level changes are also written to a file
    descriptor (b"1" / b"0"), for a simulated plant in another process."""

    def __init__(self, pin, fd):
        self.pin = pin
        self.fd = fd
        self.level = None

    def value(self, v=None):
        if v is None:
            return self.pin.value()
        self.pin.value(v)
        level = 1 if v else 0
        if level != self.level:
            self.level = level
            try:
                import os

                os.write(self.fd, b"1" if level else b"0")
            except OSError:
                pass  # nobody listens any more
        return None

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)
