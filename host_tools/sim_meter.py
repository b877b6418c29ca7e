"""A simulated Eastron SDM630 / SDM120 on a serial line: a pymodbus RTU server
whose input registers (float32, high word first) come live from a
firmware.hw.sim.MeterModel, so power and energy follow the simulated relay
and EV. The emulator runs one per charger on a pty; tests use it as the
independent peer of our Modbus master.

    server = SimMeterServer("/dev/pts/7", model="SDM630", unit=1, meter_model=mm)
    server.start()   # a thread with its own asyncio loop
    ...
    server.silent = True       # stops answering (meter lost)
    server.corrupt_next = 2    # the next two replies get a bad CRC
    server.stop()

Standalone, behind a new pty whose path it prints (point a master at it):
    python -m host_tools.sim_meter --model SDM120 --amps 16
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import threading
import time

from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware.hw import meters
from firmware.hw.sim import MeterModel, SimEV, fill_registers, register_span

# Two holding registers real Eastron meters have (function 0x03), so reading
# holding register 0 gets the same "illegal data address" a real one sends.
_HOLDING = {0x0014: "unit", 0x001C: "baud"}  # Modbus node address; baud code
_BAUD_CODES = {2400: 0.0, 4800: 1.0, 9600: 2.0, 19200: 3.0, 38400: 4.0}


class SimMeterServer:
    def __init__(self, port, model="SDM630", unit=1, meter_model=None, baud=9600, verbose=False):
        if not verbose:
            logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.port = port
        self.model = meters.MODELS[model] if isinstance(model, str) else model
        self.unit = unit
        self.baud = baud
        self.mm = meter_model if meter_model is not None else MeterModel(phases=self.model["phases"])
        self.silent = False
        self.corrupt_next = 0
        self.requests = 0
        self.replies = 0
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    # -- register map ---------------------------------------------------

    def _device(self):
        span = register_span(self.model)
        inputs = [SimData(0, count=span // 2, values=0.0, datatype=DataType.FLOAT32)]
        holding = [
            SimData(reg, values=float(self.unit if what == "unit" else _BAUD_CODES.get(self.baud, 2.0)),
                    datatype=DataType.FLOAT32)
            for reg, what in sorted(_HOLDING.items())
        ]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        return SimDevice(self.unit, simdata=(bits, list(bits), holding, inputs), action=self._action)

    async def _action(self, fc, start, address, count, registers, values):
        if fc == meters.FC_READ_INPUT:
            fill_registers(registers, self.model, self.mm, start)
        return None

    def _trace(self, sending, data):
        if not sending:
            self.requests += 1
            return data
        if self.silent or data[:1] != bytes((self.unit,)):
            # silent: the meter is lost. Another unit: a real meter stays
            # quiet; pymodbus would answer "device failure" for it.
            return b""
        self.replies += 1
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            data = data[:-1] + bytes(((data[-1] ^ 0xA5),))
        return data

    # -- life cycle -----------------------------------------------------

    def start(self, timeout=5.0):
        self._thread = threading.Thread(target=self._run, name="sim-meter", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("simulated meter did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self):
        try:
            asyncio.run(self._serve())
        except Exception as e:  # reported to start()
            self._error = e
            self._ready.set()

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._server = ModbusSerialServer(
            self._device(),
            port=self.port,
            baudrate=self.baud,
            trace_packet=self._trace,
        )
        await self._server.serve_forever(background=True)
        self._ready.set()
        await self._server.serving

    def stop(self):
        if self._loop is not None and self._server is not None:
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                fut.result(3)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(3)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    from host_tools.serial_link import PtyLink

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="SDM630", choices=sorted(meters.MODELS))
    ap.add_argument("--unit", type=int, default=1)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--port", help="serial device to serve on (default: a new pty)")
    ap.add_argument("--amps", type=float, default=16.0, help="constant load per phase")
    args = ap.parse_args(argv)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    model = meters.MODELS[args.model]
    ev = SimEV(demand_a=args.amps, phases=model["phases"])
    ev.plugged = ev.requesting = True
    mm = MeterModel(ev=ev, phases=model["phases"])
    port = args.port
    link = None
    if port is None:
        link = PtyLink()
        port = link.path_b
        print("connect your Modbus master to %s" % link.path_a, flush=True)
    server = SimMeterServer(port, args.model, args.unit, mm, args.baud).start()
    print("simulated %s at unit %d on %s, %d baud" % (args.model, args.unit, port, args.baud), flush=True)
    try:
        while True:
            time.sleep(5)
            print("%.1f W, %.3f kWh" % (mm.power_w(), mm.import_wh / 1000), flush=True)
    except KeyboardInterrupt:
        server.stop()
        if link is not None:
            link.close()


def float_words(value):
    """(high word, low word) of a float32, for tests."""
    return struct.unpack(">HH", struct.pack(">f", value))


if __name__ == "__main__":
    main()
