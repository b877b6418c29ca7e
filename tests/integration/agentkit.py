# Helpers for tests that run the whole agent as a separate process (CPython
# emulator, or `micropython -m firmware`) and drive it through the bench
# console over TCP, with a CSMS in a background event loop of the test.
import asyncio
import os
import socket
import subprocess
import sys
import threading
import time

from host_tools.bench import BenchConsole, ConsoleError
from tests.support import micropython_binary, repo_root


class ThreadLoop:
    """An asyncio loop in a daemon thread: servers live there while the test
    body (blocking console calls) runs in the main thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn, *args):
        """fn(*args) inside the loop's thread (sqlite handles live there)."""

        async def wrap():
            return fn(*args)

        return self.run(wrap())

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def free_port():
    """A TCP port free right now on loopback (MicroPython's asyncio server
    cannot report the port it got for port 0, so the test picks one)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class AgentProcess:
    """The agent in its own process, its output in a log file."""

    def __init__(self, cmd, cwd, log_path, env=None):
        self.log_path = log_path
        self._log = open(log_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=e)

    def tail(self, n=4000):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()[-n:]

    def lines(self):
        with open(self.log_path) as f:
            return f.read().splitlines()

    def console_url(self, timeout=20):
        """The socket:// URL the process printed for its console."""
        import json

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.lines():
                if line.startswith("{") and '"console"' in line:
                    return json.loads(line)["url"]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("no console address; output:\n" + self.tail())

    def console(self, url, timeout=20):
        """A BenchConsole on url, once the process accepts connections."""
        end = time.monotonic() + timeout
        while True:
            try:
                return BenchConsole(url, timeout=10.0)
            except Exception:
                if time.monotonic() >= end or self.proc.poll() is not None:
                    raise AssertionError("console %s never answered; output:\n%s" % (url, self.tail()))
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def micropython_agent(cwd, args, log_path, heapsize=None):
    cmd = [micropython_binary()]
    if heapsize:
        cmd += ["-X", "heapsize=%d" % heapsize]
    return AgentProcess(cmd + ["-m", "firmware"] + list(args), cwd, log_path)


def emulator(args, log_path):
    return AgentProcess([sys.executable, "-m", "host_tools.emulator"] + list(args), repo_root(), log_path)


def until(cond, timeout=15, what="condition"):
    """Wait (polling) until cond() is true; returns its value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def wait_event(console, name, timeout=15, **match):
    try:
        return console.wait_event(name, timeout, **match)
    except ConsoleError as e:
        raise AssertionError(str(e))

