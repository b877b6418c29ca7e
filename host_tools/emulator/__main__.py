"""python -m host_tools.emulator: emulated chargers running the real agent.

  --csms URL          the CSMS endpoint, e.g. ws://127.0.0.1:8180/ocpp
  --id ID             charge point identity (with --count: a prefix, ID-0001...)
  --state-dir DIR     everything the agent persists (with --count: DIR/<id>)
  --console SPEC      tcp:HOST:PORT for the bench console (PORT 0: any free port)
  --count N           N chargers in this process on the fleet model
  --meter-port PATH   host board: the meter is outside, on this serial device
  --coil-fd N         host board: the contactor coil level goes to this fd
  --set KEY=VALUE     an OCPP configuration default (repeatable)
  --no-sync           do not fsync the journal (fleets; printed at start)
  --journal-flush S   fleets with --no-sync: hand new journal records to the
                      OS every S seconds instead of after every agent step
  --quiet             no message log on stdout
"""
import argparse
import asyncio
import json
import os
import random
import sys

from host_tools.emulator import ConsoleHub, charger_settings, run_charger


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m host_tools.emulator", description="Emulated OCPP charge points running the real agent.")
    p.add_argument("--csms", required=True, help="CSMS WebSocket URL (the identity is appended)")
    p.add_argument("--id", default="CP-EMU-1", help="charge point identity, or the prefix with --count")
    p.add_argument("--state-dir", default="state", help="directory for the journal")
    p.add_argument("--console", default=None, help="tcp:HOST:PORT for the bench console")
    p.add_argument("--count", type=int, default=1, help="number of chargers (fleet model when > 1)")
    p.add_argument("--fleet", action="store_true", help="use the fleet model even for one charger")
    p.add_argument("--meter-link", choices=("pty", "inproc", "port"), default="pty", help="host board meter: pymodbus over a pty, in-process, or on --meter-port")
    p.add_argument("--meter-port", help="host board: read the meter on this serial device (implies --meter-link port)")
    p.add_argument("--coil-fd", type=int, help="host board: write the contactor coil level (1/0) to this inherited file descriptor")
    p.add_argument("--set", dest="ocpp", action="append", default=[], metavar="KEY=VALUE", help="OCPP configuration default")
    p.add_argument("--no-sync", action="store_true", help="keep journals unsynced (fleet runs)")
    p.add_argument("--journal-flush", dest="journal_flush_s", type=float, default=0.0, metavar="S",
                   help="fleet with --no-sync: hand journal records to the OS every S seconds (0: after every agent step)")
    p.add_argument("--quiet", dest="log_frames", action="store_false", help="no message log on stdout")
    p.add_argument("--security-profile", dest="security_profile", type=int)
    p.add_argument("--authorization-key", dest="authorization_key")
    p.add_argument("--ca-file", dest="ca_file")
    p.add_argument("--client-cert", dest="client_cert_file")
    p.add_argument("--client-key", dest="client_key_file")
    p.add_argument("--backoff-min", type=float, default=1.0)
    p.add_argument("--backoff-base", type=float, default=5.0)
    p.add_argument("--backoff-max", type=float, default=60.0)
    p.add_argument("--sessions", action="store_true", help="fleet: each charger runs sessions on its own")
    p.add_argument("--session-every", type=float, default=30.0, help="fleet: seconds between the sessions of one charger")
    p.add_argument("--id-tag", default="TAG-EMU", help="fleet: the idTag the simulated drivers present")
    p.add_argument("--timer-tick", dest="timer_tick_ms", type=float, default=50.0, metavar="MS",
                   help="fleet: timers run on a grid of MS milliseconds; what falls due within one runs in one wake-up "
                        "(a timer runs up to MS late; a finer grid costs CPU with many chargers)")
    args = p.parse_args(argv)
    args.ocpp = [_config_pair(x) for x in args.ocpp]
    return args


def _config_pair(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit("--set needs KEY=VALUE, got %r" % text)
    from firmware.ocpp.v16.config import Config

    cfg = Config()
    if key not in cfg.keys:
        raise SystemExit("unknown OCPP configuration key %s" % key)
    typed, reason = cfg.parse(key, value)
    if reason is not None:
        raise SystemExit("%s=%s: %s" % (key, value, reason))
    return key, typed


async def start_console(spec, hub):
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind != "tcp":
        raise SystemExit("--console must be tcp:HOST:PORT")
    host, _, port = rest.rpartition(":")
    server = await asyncio.start_server(hub.serve, host or "127.0.0.1", int(port))
    addr = server.sockets[0].getsockname()
    print(json.dumps({"event": "console", "url": "socket://%s:%d" % (addr[0], addr[1])}), flush=True)
    return server


def host_hardware(args):
    from boards import host
    from host_tools.emulator.hardware import EmulatedHardware

    hw = {"sim_meter_link": args.meter_link}
    if args.meter_port:
        hw["sim_meter_link"] = "port"
        hw["meter_port"] = args.meter_port
    if args.coil_fd is not None:
        hw["sim_coil_fd"] = args.coil_fd

    def make():
        drivers = host.build({"hw": hw})
        return EmulatedHardware(drivers)

    return make


async def main_one(args):
    hub = ConsoleHub()
    server = await start_console(args.console, hub)
    settings = charger_settings(args, args.id, args.state_dir)
    if args.fleet:
        from host_tools.emulator.fleet import fleet_hardware

        make = fleet_hardware(args)
    else:
        make = host_hardware(args)
    try:
        await run_charger(settings, make, hub)
    finally:
        if server is not None:
            server.close()


async def main_fleet(args):
    from host_tools.emulator.fleet import journal_note, run_fleet

    line = {"event": "fleet", "timer_tick_ms": args.timer_tick_ms}
    if args.no_sync:
        line["journals"] = journal_note(args)
    print(json.dumps(line), flush=True)
    await run_fleet(args)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        asyncio.run(main_fleet(args) if args.count > 1 else main_one(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
