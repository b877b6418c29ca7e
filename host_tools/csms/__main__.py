"""python -m host_tools.csms: run the bench CSMS until interrupted."""
import argparse
import asyncio
import json
import signal
import sys

from host_tools.csms import logs
from host_tools.csms.ratelimit import parse_limit
from host_tools.csms.server import start_csms


def _pair(text):
    name, sep, value = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected ID:PASSWORD, got %r" % text)
    return name, value


def _id_tag(text):
    tag, _, status = text.partition(":")
    return {"idTag": tag, "status": status or "Accepted"}


def parser():
    p = argparse.ArgumentParser(prog="python -m host_tools.csms", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8180)
    p.add_argument("--db", default="csms.sqlite", help="SQLite file (':memory:' for none)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve wss:// and https://")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", help="PEM CA bundle: require client certificates (security profile 3)")
    p.add_argument("--basic-auth", action="append", type=_pair, default=[], metavar="ID:PASSWORD",
                   help="HTTP Basic password for a charger (repeatable)")
    p.add_argument("--require-auth", action="store_true", help="refuse chargers without a password")
    p.add_argument("--known-only", action="store_true", help="404 at the handshake for unknown chargers")
    p.add_argument("--api-token", action="append", default=[], metavar="NAME:TOKEN[:ROLE]",
                   help="API bearer token, role admin (default) or user (repeatable); none: open API")
    p.add_argument("--rate-limit", action="append", default=[], type=parse_limit, metavar="CLASS=N[/SECONDS]",
                   help="rate limit per client for a class of routes: read, write, command (repeatable)")
    p.add_argument("--no-rate-limit", action="store_true")
    p.add_argument("--heartbeat-interval", type=int, default=60)
    p.add_argument("--retry-interval", type=int, default=10, help="interval sent with Pending/Rejected")
    p.add_argument("--boot-policy", choices=("Accepted", "Pending", "Rejected"), default="Accepted")
    p.add_argument("--id-tag", action="append", type=_id_tag, default=[], metavar="TAG[:STATUS]",
                   help="id tag known to every charger (repeatable)")
    p.add_argument("--authorize-unknown", action="store_true", help="accept unknown id tags")
    p.add_argument("--call-timeout", type=float, default=30.0, help="seconds to wait for a charger's answer")
    p.add_argument("--message-log", help="append every OCPP frame as JSON lines to this file")
    p.add_argument("--random-faults", type=json.loads, metavar="JSON",
                   help='random faults for every charger, e.g. {"seed": 1, "probabilities": {"delay": 0.1}}')
    p.add_argument("--log-level", default="INFO")
    return p


async def run(args):
    server = await start_csms(
        args.host, args.port, args.db, heartbeat_interval=args.heartbeat_interval,
        retry_interval=args.retry_interval, boot_policy=args.boot_policy, id_tags=args.id_tag or None,
        authorize_unknown=args.authorize_unknown, call_timeout=args.call_timeout, api_tokens=args.api_token,
        basic_auth=dict(args.basic_auth), require_auth=args.require_auth, known_only=args.known_only,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca,
        rate_limits=False if args.no_rate_limit else dict(args.rate_limit),
        message_log_path=args.message_log, random_faults=args.random_faults)
    print("bench CSMS: API %s/api, OCPP %s/<chargerId>" % (server.base_url, server.ws_url), flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    await server.stop()


def main(argv=None):
    args = parser().parse_args(argv)
    logs.configure_logging(args.log_level.upper())
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
