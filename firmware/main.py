# Starting the agent on a charger: read config.json, bring the network up,
# build the board's drivers, run the agent, and reboot when it asks.
#
#   main.py on a device:      from firmware.agent import main; main()
#   a Linux controller:       python -m firmware --config config.json
#   the unix port (simulated: micropython -m firmware --board unix --csms URL
#   charger, any runtime)     --id CP1 --state-dir state --console tcp:127.0.0.1:7001
#
# config.json holds the agent's settings (firmware/agent.py), plus:
#   "board"    module of boards/ whose build(config) makes the drivers
#   "hw"       the board's hardware settings (boards/base.py DEFAULTS)
#   "console"  where the bench console listens: "tcp:HOST:PORT" or "stdio"
#              (the device's USB/UART REPL line); none by default
#   "wifi"     {"ssid": ..., "password": ...} for boards with a radio
# Command-line options override the file (firmware/__main__.py).
#
# A reboot request (Reset from the CSMS, "reboot" on the console) ends
# agent.run(); a board with reset(hard) (devices) then resets the controller
# (machine.reset, or machine.soft_reset for a soft reset); elsewhere the
# agent starts again on the same journal, as a device would after its reset.
import asyncio
import os
import sys

from firmware.compat import fsync, json_dumps, json_loads, print_exception, stdin_reader, ticks_diff, ticks_ms

# A device that crashed waits before its reset: 10 s after a first crash,
# doubling with each crash in a row up to 10 minutes, so that a fault that
# comes back at every boot is not a tight reboot loop (hammering the flash,
# the CSMS and the log) and a person at the bench has time to look. A run of
# 10 minutes or more starts the count afresh. The count lives in the state
# directory (it must survive the reset); the journal is never touched.
_CRASH_PAUSE_S = 10
_CRASH_PAUSE_MAX_S = 600
_CRASH_STABLE_S = 600
_CRASH_FILE = "crashes"


def load_config(path, overrides=None):
    """config.json (path None: none) with the overrides applied (their
    "ocpp" values are merged into the file's)."""
    config = {}
    if path is not None:
        with open(path) as f:
            config = json_loads(f.read())
        if type(config) is not dict:
            raise ValueError(path + " must hold a JSON object")
    for k, v in (overrides or {}).items():
        if k == "ocpp":
            merged = dict(config.get("ocpp") or {})
            merged.update(v)
            v = merged
        config[k] = v
    for k in ("board", "identity", "csms_url"):
        if not config.get(k):
            raise ValueError("no %s: set it in config.json or on the command line" % k)
    return config


def make_dirs(path):
    """mkdir -p that also runs on MicroPython (no os.makedirs there)."""
    if not path or path == ".":
        return
    cur = "/" if path[0] == "/" else ""
    for part in path.split("/"):
        if not part:
            continue
        cur = cur + part if cur in ("", "/") else cur + "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists (or cannot be made: the journal will say so)


def load_board(name):
    return __import__("boards." + name, None, None, ("build",))


def make_hardware(board, drivers, config):
    """The agent's hardware object for the drivers a board built: the
    board's own hardware(drivers, config) if it has one, the simulated
    charger's (with its console commands) when the parts are simulated, or
    BoardHardware. Its close() releases what the board opened."""
    fn = getattr(board, "hardware", None)
    if fn is not None:
        hw = fn(drivers, config)
    elif drivers.get("sim") is not None:
        from firmware.simhw import SimHardware

        hw = SimHardware(drivers)
    else:
        from firmware.hardware import BoardHardware

        hw = BoardHardware([drivers], rfid=drivers.get("rfid"))
    if getattr(hw, "close", None) is None:
        hw.close = drivers.get("close")
    return hw


async def run_agent(settings, make_hw, hub=None, out=None, on_agent=None, reset=None, make_agent=None):
    """Run agents on hardware from make_hw() until one is stopped (returns
    the number of restarts). After a reboot request: reset(hard) when given
    (a device: does not return), then a new agent on the same journal.
    make_agent(settings, hw, out) builds each agent (default Agent)."""
    if make_agent is None:
        from firmware.agent import Agent as make_agent

    restarts = 0
    while True:
        hw = make_hw()
        try:
            agent = make_agent(settings, hw, out=out)
            if hub is not None:
                hub.attach(agent)
            if on_agent is not None:
                on_agent(agent)
            result = await agent.run()
        finally:
            if hub is not None:
                hub.attach(None)  # "rebooting" until the next agent is up
            close = getattr(hw, "close", None)
            if close is not None:
                close()
        if result is None:
            return restarts
        if reset is not None:
            reset(result == "hard")
        restarts += 1


async def serve(config, board, hub=None, out=None, on_agent=None):
    """run_agent() on a board's hardware, made afresh for every agent."""
    make_dirs(config.get("state_dir", "."))

    def make_hw():
        return make_hardware(board, board.build(config), config)

    return await run_agent(config, make_hw, hub, out, on_agent, getattr(board, "reset", None))


async def start_console(spec, hub):
    """Serve the bench console at spec ("tcp:HOST:PORT" or "stdio");
    returns what to close at the end (or None)."""
    if not spec:
        return None
    if spec == "stdio":
        return asyncio.create_task(hub.serve(await stdin_reader(), _StdoutWriter()))
    kind, _, rest = spec.partition(":")
    host, _, port = rest.rpartition(":")
    if kind != "tcp" or not port.isdigit():
        raise ValueError("console must be tcp:HOST:PORT or stdio, not " + spec)
    server = await asyncio.start_server(hub.serve, host or "127.0.0.1", int(port))
    socks = getattr(server, "sockets", None)  # CPython tells the port it got
    if socks:
        port = socks[0].getsockname()[1]
    elif port == "0":
        server.close()
        raise ValueError("console port 0: MicroPython's asyncio cannot tell which port it got; give one")
    print(json_dumps({"event": "console", "url": "socket://%s:%s" % (host or "127.0.0.1", port)}))
    return server


class _StdoutWriter:
    """The stream-writer surface the console hub needs, over sys.stdout."""

    def write(self, data):
        sys.stdout.write(data.decode())

    async def drain(self):
        pass

    def close(self):
        pass


async def amain(config, board):
    from firmware.console import ConsoleHub

    hub = ConsoleHub()
    spec = config.get("console")
    # On the REPL line the console carries the events; nothing else prints there.
    out = _quiet if spec == "stdio" else None
    server = await start_console(spec, hub)
    try:
        return await serve(config, board, hub, out)
    finally:
        if server is not None:
            server.close()


def _quiet(line):
    pass


def crash_pause_s(state_dir, ran_s):
    """Count a crash after a run of ran_s seconds and return how long to
    wait before the reset (see _CRASH_PAUSE_S). ran_s comes from the
    wrapping millisecond ticks: negative after a run of days, which counts
    as long."""
    path = state_dir + "/" + _CRASH_FILE
    n = 0
    if 0 <= ran_s < _CRASH_STABLE_S:
        try:
            with open(path) as f:
                n = int(f.read().strip() or "0")
        except (OSError, ValueError):
            n = 0  # no count yet, or an unreadable one: a first crash
    n += 1
    try:
        with open(path, "w") as f:
            f.write(str(n))
            fsync(f)
    except OSError:
        pass  # a full or read-only disk must not stop the reset
    return min(_CRASH_PAUSE_S << min(n - 1, 10), _CRASH_PAUSE_MAX_S)


def run(config):
    """Bring the network up and run the agent of a loaded configuration
    until it is stopped (Ctrl-C). On a device an unexpected error is
    printed and the controller reset after a pause, never left at a prompt."""
    board = load_board(config["board"])
    reset = getattr(board, "reset", None)
    started = ticks_ms()
    try:
        up = getattr(board, "network_up", None)
        if up is not None:
            up(config)
        return asyncio.run(amain(config, board))
    except KeyboardInterrupt:
        return None
    except Exception as e:
        if reset is None:
            raise
        print_exception(e)
        pause = crash_pause_s(config.get("state_dir", "."), ticks_diff(ticks_ms(), started) // 1000)
        print(json_dumps({"event": "crashed", "reset_in_s": pause}))
        import time

        time.sleep(pause)
        reset(True)


def main(config_path="config.json"):
    """The device entry (main.py calls firmware.agent.main, which is this)."""
    return run(load_config(config_path))
