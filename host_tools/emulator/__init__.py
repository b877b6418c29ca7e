# The emulator: the real agent (firmware/agent.py and everything under it)
# on simulated hardware, against any CSMS.
#
#   python -m host_tools.emulator --csms ws://127.0.0.1:8180/ocpp --id CP1 \
#       --state-dir state/CP1 --console tcp:127.0.0.1:7001
#
# One charger runs on the host board (boards/host.py: real drivers on
# simulated pins, the meter through real Modbus RTU frames over a pty to a
# pymodbus server). --count N runs N chargers in one process on the light
# fleet model (host_tools/emulator/hardware.py FleetHardware).
#
# A reboot (Reset from the CSMS, "reboot" on the console) ends the agent and
# starts a new one on the same state directory, as a device would.
import os

from firmware.console import ConsoleHub  # noqa: F401 (the emulator's console clients)
from firmware.main import run_agent

VERSION = "0.1.0"


def charger_settings(args, identity, state_dir):
    s = {
        "identity": identity,
        "csms_url": args.csms,
        "state_dir": state_dir,
        "connectors": 1,
        "vendor": "OpenChargeAgent",
        "model": "Emulator",
        "serial": identity,
        "firmware_version": VERSION,
        "sync": not args.no_sync,
        "log_frames": args.log_frames,
        "ocpp": dict(args.ocpp),
        "backoff_min_s": args.backoff_min,
        "backoff_base_s": args.backoff_base,
        "backoff_max_s": args.backoff_max,
    }
    for key in ("security_profile", "authorization_key", "ca_file", "client_cert_file", "client_key_file"):
        v = getattr(args, key, None)
        if v is not None:
            s[key] = v
    return s


async def run_charger(settings, make_hw, hub=None, out=None, on_agent=None, make_agent=None):
    """Run one charger until it is stopped; a reboot starts a fresh agent on
    the same state directory. Returns the number of reboots. make_agent:
    see firmware.main.run_agent (fleets build FleetAgents)."""
    os.makedirs(settings["state_dir"], exist_ok=True)
    return await run_agent(settings, make_hw, hub, out, on_agent, make_agent=make_agent)
