"""Pseudo-terminals as serial lines, for the emulator and the tests (Linux).

- open_pty(): a pty pair in raw mode: (master fd, slave device path). A
  program that wants a serial device (pymodbus, pyserial, a MicroPython
  script) opens the slave path; the other end is the master fd.
- FdPort: the non-blocking port the firmware drivers expect (write,
  readinto) on a file descriptor, e.g. a pty master.
- read_blocking(): a Modbus read without asyncio, for tools and tests.
- PtyLink: two ptys joined by a thread that copies bytes both ways, so two
  programs that each want a device path can talk, with a hook that may
  change, delay or drop what crosses (bad CRCs, a cut line).
"""

from __future__ import annotations

import os
import select
import threading
import time
import termios
import tty


def open_pty():
    """(master_fd, slave_path), both ends raw, the master non-blocking.

    The slave fd is kept open (returned third) so the settings stick until
    the caller closes it."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.set_blocking(master, False)
    return master, os.ttyname(slave), slave


class FdPort:
    """write/readinto on a non-blocking file descriptor."""

    def __init__(self, fd):
        self.fd = fd

    def write(self, buf):
        return os.write(self.fd, bytes(buf))

    def readinto(self, buf):
        try:
            data = os.read(self.fd, len(buf))
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:  # EIO: nobody has the other end open
            return 0
        n = len(data)
        buf[:n] = data
        return n

    def close(self):
        os.close(self.fd)


def read_blocking(master, unit, fc, address, count):
    """Run a ModbusMaster read to its end with time.sleep (host tools and
    tests; the agent uses `await master.read(...)`)."""
    master.start(unit, fc, address, count)
    while True:
        regs = master.poll()
        if regs is not None:
            return regs
        time.sleep(master.wait_hint_ms() / 1000)


class PtyLink:
    """Two ptys, A and B, joined by a copying thread.

    path_a / path_b are the device paths to give the two programs.
    mangle(direction, data) -> bytes, if set, sees every chunk: direction is
    "ab" (written on A, going to B) or "ba"; return the bytes to pass on
    (b"" drops them).
    """

    def __init__(self, mangle=None):
        self.mangle = mangle
        self._a, self.path_a, self._keep_a = open_pty()
        self._b, self.path_b, self._keep_b = open_pty()
        self._stop_r, self._stop_w = os.pipe()
        self.bytes_ab = 0
        self.bytes_ba = 0
        self._thread = threading.Thread(target=self._run, name="pty-link", daemon=True)
        self._thread.start()

    def _run(self):
        ends = {self._a: (self._b, "ab"), self._b: (self._a, "ba")}
        while True:
            ready, _, _ = select.select([self._a, self._b, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    continue
                other, direction = ends[fd]
                if self.mangle is not None:
                    data = self.mangle(direction, data)
                if direction == "ab":
                    self.bytes_ab += len(data)
                else:
                    self.bytes_ba += len(data)
                if data:
                    os.set_blocking(other, True)
                    try:
                        os.write(other, data)
                    finally:
                        os.set_blocking(other, False)

    def close(self):
        os.write(self._stop_w, b"x")
        self._thread.join(2)
        for fd in (self._a, self._b, self._keep_a, self._keep_b, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
