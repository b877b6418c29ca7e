# The bench console: one command per line in, one JSON object per line out
# (DESIGN.md "Bench console"). Asynchronous events are JSON lines too, each
# with an "event" field. The same text runs over a UART, a pty or TCP.
#
# A line is either JSON ({"cmd": "card", "idTag": "ABC", "id": 7}) or words
# for a person at the bench ("card ABC 1"). Every answer carries "ok", the
# command, and the request "id" when one was given.
from firmware.compat import json_dumps, json_loads, print_exception

MAX_LINE = 512  # longer input is refused, never buffered without bound

HELP = (
    "status | plug [c] | unplug [c] | charge [c] | pause [c] | card TAG [c] | "
    "stop [c] | fault weld|close|meter|lock|reader [c] | clear weld|close|meter|lock|reader [c] | "
    "get KEY | set KEY VALUE | frames on|off | queue | mem | reboot [hard] | help"
)

# word command -> (name of the argument fields in order)
_WORDS = {
    "status": (),
    "plug": ("connector",),
    "unplug": ("connector",),
    "charge": ("connector",),
    "pause": ("connector",),
    "card": ("idTag", "connector"),
    "stop": ("connector",),
    "fault": ("fault", "connector"),
    "clear": ("fault", "connector"),
    "get": ("key",),
    "set": ("key", "value"),
    "frames": ("state",),
    "queue": (),
    "mem": (),
    "reboot": ("type",),
    "help": (),
}


def parse(line):
    """(request dict, None) or (None, error text)."""
    line = line.strip()
    if not line:
        return None, None
    if len(line) > MAX_LINE:
        return None, "line longer than %d characters" % MAX_LINE
    if line[0] == "{":
        try:
            req = json_loads(line)
        except ValueError:
            return None, "not valid JSON"
        if type(req) is not dict or type(req.get("cmd")) is not str:
            return None, 'a JSON command needs a "cmd" string'
        return req, None
    words = line.split()
    cmd = words[0].lower()
    fields = _WORDS.get(cmd)
    if fields is None:
        return None, "unknown command %s (try help)" % cmd
    req = {"cmd": cmd}
    args = words[1:]
    if cmd == "set" and len(args) > 2:
        args = [args[0], " ".join(args[1:])]
    if len(args) > len(fields):
        return None, "too many arguments for %s" % cmd
    for i in range(len(args)):
        name = fields[i]
        req[name] = int(args[i]) if name == "connector" and args[i].isdigit() else args[i]
    return req, None


def answer(req, ok, data=None, error=None):
    out = {"ok": ok, "cmd": req.get("cmd") if req else None}
    if req and "id" in req:
        out["id"] = req["id"]
    if error is not None:
        out["error"] = error
    if data:
        for k in data:
            out[k] = data[k]
    return json_dumps(out)


def event_line(name, data):
    out = {"event": name}
    if data:
        for k in data:
            out[k] = data[k]
    return json_dumps(out)


class Console:
    """Runs commands against an agent (duck-typed: see Agent.console_*)."""

    def __init__(self, agent):
        self.agent = agent

    def handle(self, line):
        """The JSON answer line for one input line (None for a blank line)."""
        req, err = parse(line)
        if req is None:
            return None if err is None else answer(None, False, error=err)
        fn = getattr(self.agent, "console_" + req["cmd"], None)
        if fn is None:
            return answer(req, False, error="unknown command " + req["cmd"])
        try:
            data = fn(req)
        except ValueError as e:
            return answer(req, False, error=str(e))
        except Exception as e:  # a console mistake must never stop the charger
            return answer(req, False, error="%s: %s" % (type(e).__name__, e))
        return answer(req, True, data)


class ConsoleHub:
    """The console clients of one charger (TCP connections, or the REPL
    line). They outlive the agent: after a reboot the next agent is
    attached and the clients stay connected."""

    def __init__(self):
        self.agent = None
        self.writers = []

    def attach(self, agent):
        self.agent = agent
        if agent is not None:
            agent.console_writers = self.writers

    async def serve(self, reader, writer):
        """One client on a stream pair: a line in, a JSON line out; events
        go to every client."""

        def push(line):
            try:
                writer.write((line + "\n").encode())
            except Exception:
                pass  # a client gone mid-line; its reader ends the loop

        self.writers.append(push)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                agent = self.agent
                if len(line) > MAX_LINE + 2:
                    out = answer(None, False, error="line longer than %d characters" % MAX_LINE)
                elif agent is None:
                    out = answer(None, False, error="rebooting")
                else:
                    try:
                        out = agent.console.handle(line.decode())
                    except UnicodeError:
                        out = answer(None, False, error="not UTF-8")
                if out is not None:
                    push(out)
                await writer.drain()
        except Exception as e:  # a client that goes away is normal
            if not isinstance(e, OSError):
                print_exception(e)
        finally:
            self.writers.remove(push)
            try:
                writer.close()
            except Exception:
                pass
