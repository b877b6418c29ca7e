"""python -m host_tools.run (what `make run` starts): the bench CSMS and one
emulated charger running the real agent, in one process.

It prints where the HTTP API and the bench console are, and the idTags the
CSMS accepts. Everything persists under --dir (default state/run): the CSMS
database, the charger's journal, the message logs. Ctrl-C stops both.
"""
import argparse
import asyncio
import json
import os
import sys

from host_tools.emulator import ConsoleHub, charger_settings, run_charger
from host_tools.emulator.__main__ import host_hardware, parse_args as emulator_args, start_console

CARDS = ("04A2B3C4D5", "04B1B2B3B4")  # UIDs the simulated reader can present


async def main_async(opts):
    from host_tools.csms.server import start_csms

    os.makedirs(opts.dir, exist_ok=True)
    csms = await start_csms(
        opts.host,
        opts.port,
        os.path.join(opts.dir, "csms.sqlite"),
        id_tags={tag: "Accepted" for tag in CARDS},
        message_log_path=os.path.join(opts.dir, "csms-messages.jsonl"),
        heartbeat_interval=300,
    )
    args = emulator_args(
        [
            "--csms",
            csms.ws_url,
            "--id",
            opts.id,
            "--state-dir",
            os.path.join(opts.dir, opts.id),
            "--console",
            "tcp:%s:%d" % (opts.host, opts.console_port),
            "--set",
            "MeterValueSampleInterval=10",
            "--set",
            "ClockAlignedDataInterval=60",
        ]
        + ([] if opts.frames else ["--quiet"])
    )
    hub = ConsoleHub()
    console = await start_console(args.console, hub)
    host, port = console.sockets[0].getsockname()[:2]
    banner = [
        "",
        "Bench CSMS      HTTP API %s/api   (OCPP at %s/<id>)" % (csms.base_url, csms.ws_url),
        "Charger %-7s bench console socket://%s:%d" % (opts.id, host, port),
        "",
        "A first session (in another terminal):",
        "  B='.venv/bin/python -m host_tools.bench socket://%s:%d'" % (host, port),
        "  $B plug                 # the EV is plugged in",
        "  $B card %s        # a card the CSMS accepts, through the simulated reader" % CARDS[0],
        "  $B charge               # the EV asks for energy",
        "  curl -s %s/api/sessions" % csms.base_url,
        "  $B card %s        # the same card again stops it (or: curl -X POST %s/api/sessions/1/stop)" % (CARDS[0], csms.base_url),
        "  curl -s %s/api/sessions/1   # the session with its meter values" % csms.base_url,
        "",
    ]
    print("\n".join(banner), flush=True)
    settings = charger_settings(args, opts.id, os.path.join(opts.dir, opts.id))
    settings["message_log"] = os.path.join(opts.dir, opts.id + "-messages.jsonl")
    try:
        await run_charger(settings, host_hardware(args), hub)
    finally:
        console.close()
        await csms.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools.run", description=__doc__)
    p.add_argument("--dir", default="state/run", help="where the CSMS database and the journal live")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8180, help="bench CSMS port (HTTP API and OCPP)")
    p.add_argument("--console-port", type=int, default=7001, help="bench console TCP port")
    p.add_argument("--id", default="CP1", help="charge point identity")
    p.add_argument("--frames", action="store_true", help="print every OCPP frame")
    opts = p.parse_args(argv)
    try:
        asyncio.run(main_async(opts))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
