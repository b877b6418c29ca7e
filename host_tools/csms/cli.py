"""python -m host_tools.csms.cli: a command-line client for the bench CSMS API.

Prints answers as JSON on stdout and errors (RFC 9457 problem details) as
readable text on stderr. A 429 answer is retried after its Retry-After
(up to --retries times, each wait capped by --max-wait). Exit status: 0 on
success, 1 on an API error, 2 on a usage error, 3 when the API is unreachable.
"""
import argparse
import email.utils
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8180"


class Client:
    def __init__(self, url, token=None, request_id=None, correlation_id=None, retries=3, max_wait=60.0,
                 timeout=330.0, out=sys.stderr, sleep=time.sleep):
        self.url = url.rstrip("/")
        self.token = token
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.retries = retries
        self.max_wait = max_wait
        self.timeout = timeout
        self.out = out
        self.sleep = sleep

    def request(self, method, path, body=None, query=None):
        """(status, headers, parsed JSON body) after honouring 429s."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode([(k, v) for k, v in query if v is not None])
        data = None if body is None else json.dumps(body).encode("utf-8")
        attempt = 0
        while True:
            req = urllib.request.Request(url, data=data, method=method)
            req.add_header("Accept", "application/json, application/problem+json")
            if data is not None:
                req.add_header("Content-Type", "application/json")
            if self.token:
                req.add_header("Authorization", "Bearer " + self.token)
            if self.request_id:
                req.add_header("X-Request-ID", self.request_id)
            if self.correlation_id:
                req.add_header("X-Correlation-ID", self.correlation_id)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.status, resp.headers, _parse(resp.read())
            except urllib.error.HTTPError as err:
                status, headers, parsed = err.code, err.headers, _parse(err.read())
            if status != 429 or attempt >= self.retries:
                return status, headers, parsed
            attempt += 1
            wait = min(retry_after_seconds(headers.get("Retry-After")), self.max_wait)
            self.out.write("rate limited (429); retrying in %g s (attempt %d of %d)\n" % (wait, attempt, self.retries))
            self.out.flush()
            self.sleep(wait)


def retry_after_seconds(value, now=None):
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP-date
    (RFC 9110 §10.2.3); 1 when absent or unreadable."""
    if not value:
        return 1.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 1.0
    return max(0.0, when - (time.time() if now is None else now))


def _parse(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def format_problem(status, body, headers=None):
    """Problem details as lines a person reads."""
    if not isinstance(body, dict):
        return "HTTP %d: %s" % (status, body if body else "(no body)")
    lines = ["HTTP %d %s: %s" % (status, body.get("title", ""), body.get("detail", ""))]
    error = body.get("error")
    if isinstance(error, dict):
        lines.append("  error type: %s" % error.get("type"))
        if error.get("details") and error.get("details") != body.get("detail"):
            lines.append("  details:    %s" % error.get("details"))
    if body.get("support_code"):
        lines.append("  support code: %s (quote it when reporting)" % body["support_code"])
    for name, messages in sorted((body.get("field_errors") or {}).items()):
        lines.append("  field %s: %s" % (name, " ".join(messages)))
    if body.get("charger_answer"):
        lines.append("  charger answer: %s" % json.dumps(body["charger_answer"]))
    if body.get("type") and body.get("type") != "about:blank":
        lines.append("  type:       %s" % body["type"])
    if body.get("instance"):
        lines.append("  instance:   %s" % body["instance"])
    if headers is not None and headers.get("Retry-After"):
        lines.append("  retry after: %s s" % headers.get("Retry-After"))
    rid = body.get("request_id") or (headers.get("X-Request-ID") if headers is not None else None)
    if rid:
        lines.append("  request id: %s" % rid)
    return "\n".join(lines)


def _json_arg(text):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("not JSON: %s" % exc)


def _tag(text):
    tag, _, status = text.partition(":")
    return {"idTag": tag, "status": status or "Accepted"}


def parser():
    p = argparse.ArgumentParser(prog="python -m host_tools.csms.cli", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=os.environ.get("CSMS_URL", DEFAULT_URL), help="API base URL ($CSMS_URL)")
    p.add_argument("--token", default=os.environ.get("CSMS_TOKEN"), help="API bearer token ($CSMS_TOKEN)")
    p.add_argument("--request-id", help="X-Request-ID to send")
    p.add_argument("--correlation-id", help="X-Correlation-ID to send (kept in the OCPP message log)")
    p.add_argument("--retries", type=int, default=3, help="retries after 429 (default 3)")
    p.add_argument("--max-wait", type=float, default=60.0, help="longest Retry-After wait honoured, seconds")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("health")
    sub.add_parser("chargers")
    s = sub.add_parser("charger")
    s.add_argument("charger")
    s = sub.add_parser("sessions")
    s.add_argument("--charger")
    s.add_argument("--status", choices=("active", "stopped"))
    s = sub.add_parser("session")
    s.add_argument("session")
    s = sub.add_parser("start", help="start a session remotely")
    s.add_argument("charger")
    s.add_argument("id_tag")
    s.add_argument("--connector", type=int)
    s.add_argument("--evse", type=int)
    s.add_argument("--wait", type=float, default=0)
    s = sub.add_parser("stop", help="stop a session")
    s.add_argument("session")
    s.add_argument("--wait", type=float, default=0)
    s = sub.add_parser("call", help="send any OCPP CALL")
    s.add_argument("charger")
    s.add_argument("action")
    s.add_argument("payload", nargs="?", type=_json_arg, default={})
    s.add_argument("--timeout", type=float)
    s.add_argument("--no-validate", action="store_true")
    s = sub.add_parser("availability")
    s.add_argument("charger")
    s.add_argument("type", choices=("Operative", "Inoperative"))
    s.add_argument("--connector", type=int)
    s.add_argument("--evse", type=int)
    s = sub.add_parser("config-get")
    s.add_argument("charger")
    s.add_argument("keys", nargs="*")
    s = sub.add_parser("config-set")
    s.add_argument("charger")
    s.add_argument("key")
    s.add_argument("value")
    s = sub.add_parser("boot-policy")
    s.add_argument("charger")
    s.add_argument("status", choices=("Accepted", "Pending", "Rejected"))
    s.add_argument("--heartbeat-interval", type=int)
    s.add_argument("--retry-interval", type=int)
    s = sub.add_parser("id-tags", help="show id tags, or set them (TAG[:STATUS] ...)")
    s.add_argument("charger")
    s.add_argument("tags", nargs="*", type=_tag)
    s.add_argument("--authorize-unknown", action="store_true", default=None)
    s = sub.add_parser("faults")
    s.add_argument("charger")
    s = sub.add_parser("fault", help='add a fault, e.g. \'{"kind": "call_error", "code": "InternalError"}\'')
    s.add_argument("charger")
    s.add_argument("spec", type=_json_arg)
    s = sub.add_parser("clear-faults")
    s.add_argument("charger")
    s = sub.add_parser("messages")
    s.add_argument("--charger")
    s.add_argument("--correlation-id", dest="corr")
    s.add_argument("--limit", type=int)
    s = sub.add_parser("ledger")
    s.add_argument("--charger")
    s = sub.add_parser("request", help="any route: METHOD PATH [JSON]")
    s.add_argument("method")
    s.add_argument("path")
    s.add_argument("body", nargs="?", type=_json_arg)
    return p


def _quote(text):
    return urllib.parse.quote(text, safe="*")


def route(args):
    """(method, path, body, query) for the parsed command line."""
    c = args.command
    if c == "health":
        return "GET", "/api/health", None, None
    if c == "chargers":
        return "GET", "/api/chargers", None, None
    if c == "charger":
        return "GET", "/api/chargers/" + _quote(args.charger), None, None
    if c == "sessions":
        return "GET", "/api/sessions", None, [("charger", args.charger), ("status", args.status)]
    if c == "session":
        return "GET", "/api/sessions/" + _quote(args.session), None, None
    if c == "start":
        body = {"chargerId": args.charger, "idTag": args.id_tag, "connectorId": args.connector,
                "evseId": args.evse, "wait": args.wait}
        return "POST", "/api/sessions", {k: v for k, v in body.items() if v is not None}, None
    if c == "stop":
        return "POST", "/api/sessions/%s/stop" % _quote(args.session), {"wait": args.wait}, None
    if c == "call":
        body = {"action": args.action, "payload": args.payload, "validate": not args.no_validate}
        if args.timeout is not None:
            body["timeout"] = args.timeout
        return "POST", "/api/chargers/%s/call" % _quote(args.charger), body, None
    if c == "availability":
        body = {"type": args.type, "connectorId": args.connector, "evseId": args.evse}
        return "POST", "/api/chargers/%s/availability" % _quote(args.charger), \
            {k: v for k, v in body.items() if v is not None}, None
    if c == "config-get":
        return "GET", "/api/chargers/%s/configuration" % _quote(args.charger), None, [("key", k) for k in args.keys]
    if c == "config-set":
        return "PUT", "/api/chargers/%s/configuration" % _quote(args.charger), \
            {"key": args.key, "value": args.value}, None
    if c == "boot-policy":
        body = {"status": args.status, "heartbeatInterval": args.heartbeat_interval,
                "retryInterval": args.retry_interval}
        return "PUT", "/api/chargers/%s/boot-policy" % _quote(args.charger), \
            {k: v for k, v in body.items() if v is not None}, None
    if c == "id-tags":
        path = "/api/chargers/%s/id-tags" % _quote(args.charger)
        if not args.tags and args.authorize_unknown is None:
            return "GET", path, None, None
        body = {"idTags": args.tags}
        if args.authorize_unknown is not None:
            body["authorizeUnknown"] = True
        return "PUT", path, body, None
    if c == "faults":
        return "GET", "/api/chargers/%s/faults" % _quote(args.charger), None, None
    if c == "fault":
        return "POST", "/api/chargers/%s/faults" % _quote(args.charger), args.spec, None
    if c == "clear-faults":
        return "DELETE", "/api/chargers/%s/faults" % _quote(args.charger), None, None
    if c == "messages":
        return "GET", "/api/messages", None, [("charger", args.charger), ("correlation_id", args.corr),
                                              ("limit", args.limit)]
    if c == "ledger":
        return "GET", "/api/ledger", None, [("charger", args.charger)]
    path = args.path if args.path.startswith("/") else "/" + args.path
    return args.method.upper(), path, args.body, None


def main(argv=None, stdout=sys.stdout, stderr=sys.stderr):
    args = parser().parse_args(argv)
    client = Client(args.url, args.token, args.request_id, args.correlation_id, args.retries, args.max_wait,
                    out=stderr)
    method, path, body, query = route(args)
    try:
        status, headers, parsed = client.request(method, path, body, query)
    except (urllib.error.URLError, OSError) as exc:
        stderr.write("cannot reach %s: %s\n" % (args.url, getattr(exc, "reason", exc)))
        return 3
    if status >= 400:
        stderr.write(format_problem(status, parsed, headers) + "\n")
        return 1
    stdout.write(json.dumps(parsed, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
