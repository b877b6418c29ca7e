# Starting the agent (firmware/main.py): the command line, config.json, the
# board and its hardware object, the restart loop. Both runtimes.
import asyncio
import os
import unittest

from firmware import __main__ as fcli
from firmware import main as fmain
from firmware.console import ConsoleHub
from firmware.hardware import BoardHardware
from firmware.simhw import SimHardware
from tests.store_helpers import remove_tree, scratch_dir, write_bytes
from tests.support import CPYTHON_ONLY, IS_MICROPYTHON


class ArgsTest(unittest.TestCase):
    def test_options_become_settings(self):
        path, out = fcli.parse_args(
            ["--config", "my.json", "--board", "unix", "--csms", "ws://h/ocpp", "--id", "CP1",
             "--state-dir", "st", "--console", "tcp:127.0.0.1:7001", "--ocpp", "ocpp1.6,ocpp2.0.1",
             "--set", "HeartbeatInterval=30", "--set", "MeterValueSampleInterval=5", "--quiet"]
        )  # fmt: skip
        self.assertEqual(path, "my.json")
        self.assertEqual(out["board"], "unix")
        self.assertEqual(out["csms_url"], "ws://h/ocpp")
        self.assertEqual(out["identity"], "CP1")
        self.assertEqual(out["state_dir"], "st")
        self.assertEqual(out["console"], "tcp:127.0.0.1:7001")
        self.assertEqual(out["subprotocols"], ["ocpp1.6", "ocpp2.0.1"])
        self.assertEqual(out["ocpp"], {"HeartbeatInterval": 30, "MeterValueSampleInterval": 5})  # typed by the key table
        self.assertFalse(out["log_frames"])

    def test_mistakes_are_refused_with_the_reason(self):
        for argv in (
            ["--board"],
            ["--colour", "red"],
            ["--set", "HeartbeatInterval"],
            ["--set", "NoSuchKey=1"],
            ["--set", "HeartbeatInterval=soon"],
            ["-h"],
        ):
            self.assertRaises(ValueError, fcli.parse_args, argv)

    def test_no_config_file_unless_given_or_present(self):
        path, _ = fcli.parse_args(["--board", "unix"])
        self.assertEqual(path, "config.json" if fcli._exists("config.json") else None)


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.path = self.dir + "/config.json"

    def tearDown(self):
        remove_tree(self.dir)

    def test_file_then_overrides_merged(self):
        write_bytes(self.path, b'{"board": "unix", "identity": "A", "csms_url": "ws://x", "ocpp": {"HeartbeatInterval": 60}}')
        _, over = fcli.parse_args(["--id", "B", "--set", "MeterValueSampleInterval=5", "--set", "LocalPreAuthorize=true"])
        cfg = fmain.load_config(self.path, over)
        self.assertEqual(cfg["identity"], "B")
        self.assertEqual(cfg["ocpp"], {"HeartbeatInterval": 60, "MeterValueSampleInterval": 5, "LocalPreAuthorize": True})

    def test_required_settings_and_bad_files(self):
        self.assertRaises(ValueError, fmain.load_config, None, {"board": "unix", "identity": "A"})
        write_bytes(self.path, b"[1, 2]")
        self.assertRaises(ValueError, fmain.load_config, self.path, {"board": "unix", "identity": "A", "csms_url": "ws://x"})

    def test_make_dirs_makes_every_level(self):
        deep = self.dir + "/a/b/c"
        fmain.make_dirs(deep)
        fmain.make_dirs(deep)  # already there: fine
        self.assertTrue(os.stat(deep)[0] & 0x4000)


class _Board:
    """A board module stand-in: build() on simulated parts, counting."""

    def __init__(self, reset=None):
        self.built = 0
        self.closed = 0
        if reset is not None:
            self.reset = reset

    def build(self, config):
        from boards import unix

        self.built += 1
        d = unix.build(config)
        close = d["close"]

        def counted():
            self.closed += 1
            close()

        d["close"] = counted
        return d


class _Agent:
    """What serve() needs of firmware.agent.Agent."""

    results = []

    def __init__(self, settings, hw, out=None):
        self.hw = hw
        self.console_writers = None

    async def run(self):
        return _Agent.results.pop(0)


class RunnerTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.config = {"board": "unix", "identity": "A", "csms_url": "ws://x", "state_dir": self.dir + "/st"}
        import firmware.agent

        self.real = firmware.agent.Agent
        firmware.agent.Agent = _Agent

    def tearDown(self):
        import firmware.agent

        firmware.agent.Agent = self.real
        remove_tree(self.dir)

    def test_the_board_and_its_hardware(self):
        board = fmain.load_board("unix")
        d = board.build(self.config)
        try:
            self.assertIsInstance(fmain.make_hardware(board, d, self.config), SimHardware)
            d2 = dict(d)
            d2["sim"] = None
            self.assertIsInstance(fmain.make_hardware(board, d2, self.config), BoardHardware)
        finally:
            d["close"]()

    def test_a_reboot_starts_a_new_agent_unless_the_board_resets(self):
        board = _Board()
        hub = ConsoleHub()
        seen = []
        _Agent.results = ["soft", "hard", None]
        n = asyncio.run(fmain.serve(self.config, board, hub, on_agent=seen.append))
        self.assertEqual(n, 2)
        self.assertEqual((board.built, board.closed, len(seen)), (3, 3, 3))
        self.assertIsNone(hub.agent)  # detached after the last run
        self.assertTrue(os.stat(self.dir + "/st")[0] & 0x4000)
        resets = []
        board = _Board(reset=resets.append)
        _Agent.results = ["hard", "soft", None]
        asyncio.run(fmain.serve(self.config, board))
        self.assertEqual(resets, [True, False])


class _FakeMachine:
    calls = []

    @staticmethod
    def reset():
        _FakeMachine.calls.append("reset")

    @staticmethod
    def soft_reset():
        _FakeMachine.calls.append("soft_reset")


class _FakeWLAN:
    instances = []

    def __init__(self, which):
        self.which = which
        self.on = False
        self.joined = None
        _FakeWLAN.instances.append(self)

    def active(self, on):
        self.on = on

    def isconnected(self):
        return self.joined is not None

    def connect(self, ssid, password):
        self.joined = (ssid, password)


class _FakeNetwork:
    STA_IF = 0
    WLAN = _FakeWLAN


class DeviceHooksTest(unittest.TestCase):
    """What firmware/main.py asks of a device board (boards/base.py)."""

    def setUp(self):
        import sys

        self.saved = {k: sys.modules.get(k) for k in ("machine", "network")}
        sys.modules["machine"] = _FakeMachine
        sys.modules["network"] = _FakeNetwork
        _FakeMachine.calls = []
        _FakeWLAN.instances = []

    def tearDown(self):
        import sys

        for k, v in self.saved.items():
            if v is None:
                del sys.modules[k]
            else:
                sys.modules[k] = v

    def test_device_boards_reset_the_controller(self):
        from boards import esp32_devkit, picow

        esp32_devkit.reset(True)
        picow.reset(False)
        self.assertEqual(_FakeMachine.calls, ["reset", "soft_reset"])

    def test_wifi_from_the_config(self):
        from boards import esp32_devkit

        self.assertIsNone(esp32_devkit.network_up({}))  # no "wifi": nothing to do
        self.assertTrue(esp32_devkit.network_up({"wifi": {"ssid": "bench", "password": "pw"}}))
        sta = _FakeWLAN.instances[-1]
        self.assertTrue(sta.on)
        self.assertEqual(sta.joined, ("bench", "pw"))


class _Lines:
    def __init__(self, lines):
        self.lines = list(lines)

    async def readline(self):
        return self.lines.pop(0) if self.lines else b""


class _Out:
    def __init__(self):
        self.data = b""
        self.closed = False

    def write(self, b):
        self.data += b

    async def drain(self):
        pass

    def close(self):
        self.closed = True


class ConsoleHubTest(unittest.TestCase):
    def test_lines_in_answers_out_and_the_clients_outlive_the_agent(self):
        from firmware.console import Console

        class Agent:
            console_writers = None

            def console_status(self, req):
                return {"up": True}

        hub = ConsoleHub()
        out = _Out()
        lines = [b"status\n", b"x" * 600 + b"\n", b"\xff\xfe\n"]
        asyncio.run(hub.serve(_Lines(lines), out))  # no agent yet
        self.assertEqual(out.data.count(b'"rebooting"'), 2)
        self.assertIn(b"line longer", out.data)
        self.assertTrue(out.closed)
        agent = Agent()
        agent.console = Console(agent)
        hub.attach(agent)
        self.assertIs(agent.console_writers, hub.writers)
        out = _Out()
        asyncio.run(hub.serve(_Lines([b"status\n", b"\xff\xfe\n"]), out))
        got = out.data.decode().splitlines()
        self.assertEqual(len(got), 2)
        self.assertIn('"up":true', got[0])
        self.assertIn("not UTF-8", got[1])
        self.assertEqual(hub.writers, [])  # the client is gone


class CrashPauseTest(unittest.TestCase):
    """A device that crashes waits longer with each crash in a row before
    its reset, so a fault that returns at every boot is no tight loop."""

    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def _count(self):
        with open(self.dir + "/" + fmain._CRASH_FILE) as f:
            return f.read()

    def test_pauses_double_with_crashes_in_a_row_up_to_ten_minutes(self):
        pauses = [fmain.crash_pause_s(self.dir, 5) for _ in range(8)]
        self.assertEqual(pauses, [10, 20, 40, 80, 160, 320, 600, 600])
        self.assertEqual(self._count(), "8")  # kept on disk across the resets

    def test_a_long_run_starts_the_count_afresh(self):
        for _ in range(3):
            fmain.crash_pause_s(self.dir, 5)
        self.assertEqual(fmain.crash_pause_s(self.dir, 600), 10)
        self.assertEqual(fmain.crash_pause_s(self.dir, 30), 20)
        # Days of running wrap the millisecond ticks negative: long too.
        self.assertEqual(fmain.crash_pause_s(self.dir, -5), 10)

    def test_an_unreadable_count_is_a_first_crash(self):
        write_bytes(self.dir + "/" + fmain._CRASH_FILE, b"\xff garbage")
        self.assertEqual(fmain.crash_pause_s(self.dir, 5), 10)
        self.assertEqual(self._count(), "1")

    def test_no_state_directory_still_resets(self):
        self.assertEqual(fmain.crash_pause_s(self.dir + "/missing", 5), 10)


class _CrashingBoard:
    def __init__(self):
        self.resets = []

    def build(self, config):
        raise RuntimeError("driver bug")

    def reset(self, hard):
        self.resets.append(hard)


@unittest.skipIf(IS_MICROPYTHON, CPYTHON_ONLY)
class CrashResetTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()

    def tearDown(self):
        remove_tree(self.dir)

    def test_a_crash_is_printed_then_reset_after_the_growing_pause(self):
        import contextlib
        import io
        import time
        from unittest import mock

        board = _CrashingBoard()
        config = {"board": "x", "identity": "A", "csms_url": "ws://x", "state_dir": self.dir}
        slept = []
        out, err = io.StringIO(), io.StringIO()
        with mock.patch.object(fmain, "load_board", lambda name: board), \
                mock.patch.object(time, "sleep", slept.append), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            fmain.run(config)
            fmain.run(config)
        self.assertEqual(slept, [10, 20])
        self.assertEqual(board.resets, [True, True])
        self.assertIn("RuntimeError: driver bug", err.getvalue() + out.getvalue())
        self.assertIn('{"event":"crashed","reset_in_s":20}', out.getvalue())
