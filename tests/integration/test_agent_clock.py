"""The agent's wall clock at boot: the core takes the wall time at
monotonic 0, and the agent reads the wall clock only after replaying its
journal (which takes a while on a big one). Found by make chaos: session
stamps ran ahead by the replay time."""
import time

from firmware.agent import Agent
from host_tools.emulator.hardware import FleetHardware
from tests.integration.offline_kit import FakeMono


def test_wall_clock_at_boot_ignores_the_time_spent_replaying(tmp_path):
    mono = FakeMono(5000)  # 5 s of replay before the wall clock is read
    settings = {"identity": "CP-CLOCK", "csms_url": "ws://127.0.0.1:9", "state_dir": str(tmp_path), "log_frames": False}
    agent = Agent(settings, FleetHardware(), mono=mono, out=lambda line: None)
    try:
        assert abs(agent.cp.wall(mono.now()) - time.time() * 1000) < 1000
    finally:
        agent.store.close()


def test_a_stop_asked_before_run_ends_run_at_once(tmp_path):
    """stop() may come before run() has started (a supervisor shutting down
    while the agent is being built): run() then returns without connecting
    and closes what it opened."""
    import asyncio

    settings = {"identity": "CP-STOP", "csms_url": "ws://127.0.0.1:9", "state_dir": str(tmp_path), "log_frames": False}
    agent = Agent(settings, FleetHardware(), out=lambda line: None)
    agent.stop()
    assert asyncio.run(asyncio.wait_for(agent.run(), 5)) is None
    assert agent.running is False
