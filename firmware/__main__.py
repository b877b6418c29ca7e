# python -m firmware (CPython) / micropython -m firmware (unix port): the
# agent with command-line options over config.json (firmware/main.py). Kept
# apart from firmware/main.py so that a device never loads it.
import os
import sys

from firmware.main import load_config, run

USAGE = """usage: python -m firmware [--config FILE] [--board B] [--csms URL] [--id ID]
       [--state-dir DIR] [--console tcp:HOST:PORT|stdio] [--ocpp ocpp1.6[,...]]
       [--set KEY=VALUE]... [--quiet]"""

_OPTIONS = {
    "--board": "board",
    "--csms": "csms_url",
    "--id": "identity",
    "--state-dir": "state_dir",
    "--console": "console",
}


def parse_args(argv):
    """(config path or None, {setting: value}) from the command line;
    ValueError with the reason for anything it does not understand. --set
    values are typed and checked by the OCPP configuration table."""
    path = "config.json"
    given = False
    out = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--quiet":
            out["log_frames"] = False
            i += 1
            continue
        if a in ("-h", "--help"):
            raise ValueError(USAGE)
        if i + 1 >= len(argv):
            raise ValueError("%s needs a value\n%s" % (a, USAGE))
        v = argv[i + 1]
        i += 2
        if a == "--config":
            path = v
            given = True
        elif a == "--ocpp":
            out["subprotocols"] = v.split(",")
        elif a == "--set":
            key, sep, value = v.partition("=")
            if not sep:
                raise ValueError("--set needs KEY=VALUE, got " + v)
            out.setdefault("ocpp", {})[key] = _typed(key, value)
        elif a in _OPTIONS:
            out[_OPTIONS[a]] = v
        else:
            raise ValueError("unknown option %s\n%s" % (a, USAGE))
    return (path if given or _exists(path) else None), out


def _typed(key, text):
    from firmware.ocpp.v16.config import Config

    cfg = Config()
    if key not in cfg.keys:
        raise ValueError("unknown OCPP configuration key " + key)
    value, reason = cfg.parse(key, text)
    if reason is not None:
        raise ValueError("%s=%s: %s" % (key, text, reason))
    return value


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def cli(argv=None):
    try:
        path, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        config = load_config(path, overrides)
    except (ValueError, OSError) as e:
        print(e)
        sys.exit(2)
    run(config)


if __name__ == "__main__":
    cli()
