"""python -m host_tools.bench PORT_OR_URL [COMMAND ...]: the bench console client.

PORT_OR_URL is anything pyserial's serial_for_url opens: /dev/ttyUSB0 (a
charger's UART), /dev/pts/N (a pty), socket://HOST:PORT (an emulated charger),
loop:// (a self-test). With a COMMAND it sends that one line, prints the
answer and exits (status 1 if the answer is not ok); without one it is
interactive: type commands, see answers and events as they come.

  python -m host_tools.bench socket://127.0.0.1:7001 status
  python -m host_tools.bench socket://127.0.0.1:7001 --wait transaction_started card 04A2B3C4D5
  python -m host_tools.bench /dev/ttyUSB0 --baud 115200

Scripted use from Python: `with BenchConsole(url) as b: b.cmd("plug")`.
"""
import argparse
import json
import sys
import threading
import time

import serial

from firmware.console import parse


class ConsoleError(Exception):
    pass


class BenchConsole:
    """A line-oriented JSON console over pyserial. Answers and events are
    told apart by their "event" field; events are kept for wait_event()."""

    def __init__(self, url, baud=115200, timeout=5.0):
        self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.1)
        self.timeout = timeout
        self.events = []
        self.answers = []
        self._buf = b""
        self._next_id = 0

    def close(self):
        self.port.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _read_lines(self, deadline):
        """Read what is there (until deadline) and sort it into answers/events."""
        while True:
            # What is waiting, or one byte: read(4096) would sit out the
            # port timeout (0.1 s) on every answer shorter than that.
            waiting = self.port.in_waiting
            chunk = self.port.read(min(waiting, 65536) if waiting else 1)
            if chunk:
                self._buf += chunk
                while b"\n" in self._buf:
                    line, _, self._buf = self._buf.partition(b"\n")
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue  # boot noise on a real UART
                    if isinstance(msg, dict) and "event" in msg:
                        self.events.append(msg)
                    else:
                        self.answers.append(msg)
                return
            if time.monotonic() >= deadline:
                return

    def cmd(self, line, **fields):
        """Send a command (words, or a cmd name plus fields) and return its
        answer dict; raise ConsoleError if it is not ok."""
        self._next_id += 1
        rid = self._next_id
        if fields:
            req = dict(fields)
            req["cmd"] = line
        else:
            req, err = parse(line)  # the device's own parser: same words, same fields
            if req is None:
                raise ConsoleError(err or "empty command")
        req["id"] = rid
        text = json.dumps(req)
        self.port.write(text.encode() + b"\n")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for i, a in enumerate(self.answers):
                if a.get("id") == rid:
                    del self.answers[i]
                    if not a.get("ok"):
                        raise ConsoleError(a.get("error", "refused"))
                    return a
            self._read_lines(deadline)
        raise ConsoleError("no answer to %r within %.1fs" % (line, self.timeout))

    def wait_event(self, name, timeout=None, **match):
        """The first event called name (whose fields equal match) seen since
        the last wait, waiting up to timeout seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, e in enumerate(self.events):
                if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
                    del self.events[: i + 1]
                    return e
            if time.monotonic() >= deadline:
                raise ConsoleError("no %s event within the timeout" % name)
            self._read_lines(deadline)


def _print(msg):
    if "event" in msg:
        sys.stdout.write("  . %s\n" % json.dumps(msg))
    else:
        sys.stdout.write("%s\n" % json.dumps(msg, indent=None))
    sys.stdout.flush()


def interactive(console):
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            console._read_lines(time.monotonic() + 0.2)
            while console.answers:
                _print(console.answers.pop(0))
            while console.events:
                _print(console.events.pop(0))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sys.stdout.write("connected; type help, Ctrl-D to leave\n")
    try:
        for line in sys.stdin:
            if line.strip():
                console.port.write(line.strip().encode() + b"\n")
    except KeyboardInterrupt:
        pass
    stop.set()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools.bench", description="Bench console client (JSON lines over a UART, a pty or TCP).")
    p.add_argument("url", help="/dev/ttyUSB0, /dev/pts/N, socket://HOST:PORT, ...")
    p.add_argument("command", nargs="*", help="one command to run, e.g. status or card 04A2B3C4")
    p.add_argument("--baud", type=int, default=115200)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--wait", metavar="EVENT", help="after the command, wait for this event and print it")
    args = p.parse_args(argv)
    with BenchConsole(args.url, args.baud, args.timeout) as c:
        if not args.command:
            interactive(c)
            return 0
        try:
            answer = c.cmd(" ".join(args.command))
            _print(answer)
            if args.wait:
                _print(c.wait_event(args.wait))
        except ConsoleError as e:
            sys.stderr.write("error: %s\n" % e)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
