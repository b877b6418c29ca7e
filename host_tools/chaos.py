"""make chaos: SIGKILL the emulated charger at random moments, restart it on
the same state directory, and check that billing survived.

  python -m host_tools.chaos [--cycles 200] [--seed N] [--workdir build/chaos]
                             [--json PATH] [--faults]

One process holds the parts that outlive the charger:
- the bench CSMS (host_tools/csms, SQLite file in the work directory), whose
  transactions and ledger of every transaction message are compared at the end;
- the energy meter: a pymodbus server (host_tools/sim_meter) simulating an
  Eastron SDM630 behind a pty. It is the truth: its register keeps its count
  across kills, like a meter with its own supply and non-volatile register;
- the plant around it: the EV (plugged, asking for energy) and the
  contactor's main contacts, which follow the coil the emulator drives
  through an inherited pipe (one byte per change). A kill closes the pipe:
  the coil drops, as it does when a controller loses power, and the harness
  cuts the energy at the moment it sends the signal.

The charger is `python -m host_tools.emulator` on the host board, reading the
meter over real Modbus RTU through the pty and keeping its journal with
fsync. Each cycle spawns it, drives sessions through its bench console (plug,
card, charge, card, unplug, ...), and kills it with SIGKILL: at a random
moment (timed), or as (or a few milliseconds after) the CSMS answers a chosen
StartTransaction, StopTransaction or MeterValues (answer kills: the answer
may or may not reach the journal first, which is how duplicates arise). The
kill plans come from the seed, printed at the start; the moments they land
on depend on timing. After the last cycle the charger runs once more until
its queue is empty, then the records are compared with the meter:

- StartTransactions without a Stop (CSMS sessions still active) must be 0;
- lost StopTransactions (energy the meter counted in a contactor closing
  that no stopped session covers) must be 0;
- wrong transactionIds (a Stop or MeterValues naming a session whose energy
  or time it does not fit, stops of unknown or -1 transactions, conflicting
  stops) must be 0;
- every duplicate must be explained: the copy before it came from a run of
  the charger that a kill ended before it recorded the answer, or (--faults)
  the CSMS withheld that copy's answer or sent it after MessageTimeout;
- meterStart and meterStop within their bounds of the true register.

Exit status 0 when every check holds, 1 otherwise, 2 on a harness failure.
"""
import argparse
import asyncio
import calendar
import json
import os
import random
import shutil
import signal
import sys
import threading
import time

from firmware.hw.sim import MeterModel, SimEV

CP_ID = "CHAOS-1"
ID_TAG = "CHAOS-TAG"
DEMAND_A = 16.0  # per phase, three phases: about 10.9 kW
START_WH = 5000.0  # the meter's register when the run begins
SAMPLE_S = 1  # MeterValueSampleInterval: a journalled checkpoint per second
METER_S = 1.0  # the host board reads its meter once a second (firmware/hardware.py METER_MS)
TOLERANCE_WH = 1.0  # the register is read in whole Wh
SLACK_S = 1.0  # scheduling delays on a loaded host, added to every time bound
TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
ANSWER_KILL_SHARE = 0.4  # share of cycles killed right after a CSMS answer
MAX_LIFE_S = 4.0  # a timed kill comes within this long after the spawn
# --faults: the bench CSMS also misbehaves at random (its fault injection),
# and the charger's timeouts and retries are shortened to match.
FAULTS = {"probabilities": {"call_error": 0.02, "delay": 0.03, "no_answer": 0.02, "drop": 0.01, "malformed": 0.01},
          "codes": ["InternalError", "GenericError"], "delay_seconds": [0.2, 3.0], "process_probability": 0.5,
          "refuse_seconds": 0}
FAULT_TIMEOUT_S = 2  # MessageTimeout with --faults
FAULT_SETTINGS = ("--set", "MessageTimeout=%d" % FAULT_TIMEOUT_S, "--set", "TransactionMessageRetryInterval=1",
                  "--set", "TransactionMessageAttempts=10")


# ---- the plant: meter register, EV and contactor -------------------------------


class Plant(MeterModel):
    """The meter the charger reads (served by pymodbus) and the truth it is
    checked against. Energy flows while the contacts are closed (the coil
    line says so) and the EV is plugged in and asking. Thread-safe: the
    Modbus server reads from its own thread."""

    def __init__(self, start_wh=START_WH, demand_a=DEMAND_A, clock=time.time):
        MeterModel.__init__(self, phases=3)
        self.lock = threading.RLock()
        self.clock = clock
        self.import_wh = start_wh
        self.ev = SimEV(demand_a=demand_a, phases=3)
        self.coil = False
        self._t = clock()
        # [t_on, wh_on, t_off, wh_off]: each time the contacts closed
        self.segments = []

    def current_a(self):
        ev = self.ev
        if not (self.coil and ev.plugged and ev.requesting):
            return 0.0
        return float(ev.demand_a)

    def full_power_w(self):
        return self.volts * self.ev.demand_a * self.pf * 3

    def advance(self):
        with self.lock:
            t = self.clock()
            if t > self._t:
                self.import_wh += self.power_w() * (t - self._t) / 3600.0
                self._t = t

    def set_coil(self, on):
        with self.lock:
            self.advance()
            if on == self.coil:
                return
            self.coil = on
            if on:
                self.segments.append([self._t, self.import_wh, None, None])
            else:
                seg = self.segments[-1]
                seg[2], seg[3] = self._t, self.import_wh

    def set_ev(self, plugged=None, requesting=None):
        with self.lock:
            self.advance()
            if plugged is not None:
                self.ev.plugged = plugged
                if not plugged:
                    self.ev.requesting = False
            if requesting is not None:
                self.ev.requesting = requesting and self.ev.plugged

    def register_wh(self):
        with self.lock:
            self.advance()
            return self.import_wh


# ---- one run of the emulator ----------------------------------------------------


class Gone(Exception):
    """The emulator process (or its console) is gone."""


class Life:
    """One emulator process, from spawn to kill: its events (from stdout),
    its bench console, and the coil line to the plant."""

    def __init__(self, index, plant, log):
        self.index = index
        self.plant = plant
        self.log = log
        self.proc = None
        self.events = []  # (time, event dict)
        self.console_url = asyncio.get_running_loop().create_future()
        self.boot_accepted = asyncio.Event()
        self.cut = False
        self.coil_closed = asyncio.Event()
        self._coil_fd = None
        self._reader = None
        self._writer = None
        self._answers = {}
        self._console_gone = False
        self._next_id = 0
        self._tasks = []

    async def spawn(self, csms_url, state_dir, meter_port, extra_args=()):
        r, w = os.pipe()
        self._coil_fd = r
        os.set_blocking(r, False)
        asyncio.get_running_loop().add_reader(r, self._coil_data)
        args = [
            sys.executable, "-m", "host_tools.emulator",
            "--csms", csms_url, "--id", CP_ID, "--state-dir", state_dir,
            "--console", "tcp:127.0.0.1:0", "--meter-port", meter_port, "--coil-fd", str(w),
            "--quiet", "--backoff-min", "0.05", "--backoff-base", "0.2", "--backoff-max", "1",
            "--set", "MeterValueSampleInterval=%d" % SAMPLE_S,
            "--set", "StopTxnSampledData=Energy.Active.Import.Register",
        ]
        args.extend(extra_args)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.t_spawn = time.time()
        self.proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, pass_fds=(w,), env=env,
            cwd=_repo_root())
        os.close(w)  # the child holds the only writer: its death closes the line
        self._tasks.append(asyncio.ensure_future(self._read_stdout()))

    def _coil_data(self):
        try:
            data = os.read(self._coil_fd, 256)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_coil_line()
            return
        if self.cut:
            return  # written in the instant between the power cut and the kill
        for b in data:
            self.plant.set_coil(b == 0x31)

    def _close_coil_line(self):
        if self._coil_fd is None:
            return
        asyncio.get_running_loop().remove_reader(self._coil_fd)
        os.close(self._coil_fd)
        self._coil_fd = None
        self.plant.set_coil(False)
        self.coil_closed.set()

    async def _read_stdout(self):
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                return
            self.log.write(line.decode("utf-8", "replace"))
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if not isinstance(ev, dict) or "event" not in ev:
                continue
            self.events.append((time.time(), ev))
            name = ev["event"]
            if name == "console" and not self.console_url.done():
                self.console_url.set_result(ev["url"])
            elif name == "boot" and ev.get("status") == "Accepted":
                self.boot_accepted.set()

    def seen(self, name):
        return [e for _, e in self.events if e["event"] == name]

    # -- console --------------------------------------------------------------

    async def open_console(self, timeout=10.0):
        url = await asyncio.wait_for(self.console_url, timeout)
        host, _, port = url[len("socket://"):].rpartition(":")
        self._reader, self._writer = await asyncio.open_connection(host, int(port))
        self._tasks.append(asyncio.ensure_future(self._read_console()))

    async def _read_console(self):
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                fut = self._answers.pop(msg.get("id"), None) if isinstance(msg, dict) else None
                if fut is not None and not fut.done():
                    fut.set_result(msg)
        except (OSError, asyncio.IncompleteReadError):
            pass
        self._console_gone = True
        for fut in self._answers.values():
            if not fut.done():
                fut.set_exception(Gone("console closed"))
        self._answers = {}

    async def cmd(self, name, timeout=5.0, **fields):
        if self._writer is None or self._writer.is_closing() or self._console_gone:
            raise Gone("no console")
        self._next_id += 1
        req = dict(fields, cmd=name, id=self._next_id)
        fut = asyncio.get_running_loop().create_future()
        self._answers[self._next_id] = fut
        try:
            self._writer.write((json.dumps(req) + "\n").encode())
            await self._writer.drain()
        except OSError:
            raise Gone("console write failed")
        return await asyncio.wait_for(fut, timeout)

    async def status(self):
        return await self.cmd("status")

    # -- the end ---------------------------------------------------------------

    def kill_now(self):
        """Power cut: the energy stops now, and SIGKILL. Synchronous, so it
        can come between the CSMS storing a message and sending its answer."""
        if self.cut:
            return
        self.cut = True
        self.plant.set_coil(False)
        self.t_kill = time.time()
        self.wh_kill = self.plant.register_wh()
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def kill(self):
        """kill_now(), then wait for the process and its coil line to end;
        (time, register) at the cut."""
        self.kill_now()
        t, wh = self.t_kill, self.wh_kill
        await self.proc.wait()
        try:
            await asyncio.wait_for(self.coil_closed.wait(), 5.0)
        except asyncio.TimeoutError:
            self._close_coil_line()
        await self.close()
        return t, wh

    async def close(self):
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except BaseException:
                pass
        if self._writer is not None:
            self._writer.close()
        self._close_coil_line()


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the EV driver -----------------------------------------------------------------


async def wait_for(life, pred, timeout):
    """Poll the console status until pred(status) holds; the status or None."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        st = await life.status()
        if pred(st):
            return st
        await asyncio.sleep(0.05)
    return None


def _tx(st):
    return st["connectors"][0].get("transaction")


async def drive(life, plant, rng, stats):
    """Sessions, one after another, until the process is killed."""
    try:
        await _sessions(life, plant, rng, stats)
    except Gone:
        pass  # killed


async def _sessions(life, plant, rng, stats):
    await life.boot_accepted.wait()
    while True:
        plant.set_ev(plugged=True)
        await life.cmd("plug")
        await life.cmd("card", idTag=ID_TAG)
        st = await wait_for(life, lambda s: _tx(s) is not None, 3.0)
        if st is None:
            stats["starts_refused"] += 1
        else:
            stats["sessions_driven"] += 1
        plant.set_ev(requesting=True)
        await life.cmd("charge")
        await asyncio.sleep(rng.uniform(0.3, 2.0))
        if st is not None:
            await life.cmd("card", idTag=ID_TAG)
            await wait_for(life, lambda s: _tx(s) is None, 3.0)
        plant.set_ev(plugged=False)
        await life.cmd("unplug")
        await asyncio.sleep(rng.uniform(0.05, 1.0))


# ---- kills ------------------------------------------------------------------------------


def kill_plan(seed, cycle, max_life_s=MAX_LIFE_S):
    """The plan for one cycle, from the seed alone: ("timed", seconds) or
    ("answer", action, nth, delay_s). An answer kill with delay 0 comes
    after the CSMS stored the message and before its answer leaves; a
    delay of a few milliseconds races the answer to the charger's journal."""
    r = random.Random(seed * 100003 + cycle)
    if r.random() < ANSWER_KILL_SHARE:
        action = r.choice(TX_ACTIONS)
        nth = 1 if action != "MeterValues" else r.randint(1, 2)
        delay = r.choice((0.0, r.uniform(0.0, 0.003), r.uniform(0.0, 0.02)))
        return ("answer", action, nth, round(delay, 4))
    return ("timed", round(r.uniform(0.05, max_life_s), 3))


def describe_plan(plan):
    if plan[0] == "timed":
        return "timed %.3f s after spawn" % plan[1]
    if plan[3] == 0:
        return "as the CSMS answers %s #%d" % (plan[1], plan[2])
    return "%.1f ms after the CSMS answered %s #%d" % (plan[3] * 1000, plan[1], plan[2])


class AnswerWatch:
    """Wraps the bench CSMS's message log: every answer it sends to a
    transaction message is counted per life, so a kill can follow one."""

    def __init__(self, message_log):
        self.counts = {}
        self.waiters = []  # (action, nth, future)
        self._add = message_log.add
        message_log.add = self.add

    def reset(self):
        self.counts = {}
        self.waiters = []

    def add(self, record):
        out = self._add(record)
        if record.get("dir") == "out" and record.get("type") == "CALLRESULT" and record.get("action") in TX_ACTIONS:
            a = record["action"]
            n = self.counts.get(a, 0) + 1
            self.counts[a] = n
            for w in list(self.waiters):
                if w[0] == a and w[1] == n and not w[2].done():
                    if w[3] is not None:
                        w[3]()  # now: the answer is logged, not yet sent
                    w[2].set_result(time.time())
                    self.waiters.remove(w)
        return out

    def wait(self, action, nth, now=None):
        """A future set when the CSMS answers the nth `action` of this life;
        now(), if given, is called at that moment, before the answer is sent."""
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((action, nth, fut, now))
        return fut


def phase_of(life):
    """Where the charger was when the kill came, from what it reported."""
    if not life.boot_accepted.is_set():
        return "booting"
    open_tx = 0
    for _, e in life.events:
        if e["event"] == "transaction_started":
            open_tx += 1
        elif e["event"] == "transaction_stopped" and e.get("reason") != "PowerLoss":
            open_tx -= 1
    return "charging" if open_tx > 0 else "idle"


# ---- the run ------------------------------------------------------------------------------


async def run(cycles=200, seed=None, workdir="build/chaos", out=print, final_timeout=60.0, max_life_s=MAX_LIFE_S,
              faults=False):
    """The whole chaos run; returns the report dict (see analyse()). faults:
    the CSMS also injects random faults (FAULTS), seeded from `seed`."""
    from host_tools.csms import start_csms
    from host_tools.serial_link import PtyLink
    from host_tools.sim_meter import SimMeterServer

    if seed is None:
        seed = random.SystemRandom().randrange(1, 1 << 31)
    t0 = time.monotonic()
    shutil.rmtree(workdir, ignore_errors=True)
    state_dir = os.path.join(workdir, "state")
    os.makedirs(state_dir)
    out("chaos: seed %d, %d cycles%s, work directory %s (rerun with --seed %d)" % (
        seed, cycles, ", CSMS faults " + json.dumps(FAULTS["probabilities"], sort_keys=True) if faults else "", workdir, seed))
    extra = FAULT_SETTINGS if faults else ()
    plant = Plant()
    link = PtyLink()
    meter = SimMeterServer(link.path_b, "SDM630", 1, meter_model=plant)
    meter.start()
    server = await start_csms(port=0, db_path=os.path.join(workdir, "csms.sqlite"), id_tags={ID_TAG: "Accepted"},
                              heartbeat_interval=300, message_log_path=os.path.join(workdir, "ocpp.jsonl"),
                              message_log_size=1000, rate_limits=False,
                              random_faults=dict(FAULTS, seed=seed) if faults else None)
    watch = AnswerWatch(server.message_log)
    log = open(os.path.join(workdir, "emulator.log"), "w")
    csms_url = server.ws_url
    kills = []
    problems = []
    stats = {"sessions_driven": 0, "starts_refused": 0}
    final = None
    try:
        for cycle in range(1, cycles + 1):
            plan = kill_plan(seed, cycle, max_life_s)
            watch.reset()
            life = Life(cycle, plant, log)
            log.write("== cycle %d: %s\n" % (cycle, describe_plan(plan)))
            await life.spawn(csms_url, state_dir, link.path_a, extra)
            driver = None
            try:
                await life.open_console()
            except (Gone, OSError, asyncio.TimeoutError) as e:
                problems.append("cycle %d: the emulator's console did not come up (%r)" % (cycle, e))
            else:
                driver = asyncio.ensure_future(drive(life, plant, random.Random(seed * 7919 + cycle), stats))
            landed = "timed"
            if plan[0] == "timed":
                await asyncio.sleep(max(0.0, plan[1] - (time.time() - life.t_spawn)))
            else:
                try:
                    now = life.kill_now if plan[3] == 0 else None
                    await asyncio.wait_for(watch.wait(plan[1], plan[2], now), max_life_s + 4)
                    await asyncio.sleep(plan[3])
                    landed = "answer"
                except asyncio.TimeoutError:
                    landed = "late"  # the answer never came: killed at the deadline
            if life.proc.returncode is not None:
                problems.append("cycle %d: the emulator exited by itself (status %s); see emulator.log" % (cycle, life.proc.returncode))
            phase = phase_of(life)
            if driver is not None:
                driver.cancel()
            t_kill, wh = await life.kill()
            if driver is not None:
                await _driver_failure(driver, problems, cycle)
            plant.set_ev(plugged=False)  # the next process starts with no EV on the pilot
            kills.append({"cycle": cycle, "time": t_kill, "wh": wh, "plan": plan, "landed": landed, "phase": phase,
                          "life_s": round(t_kill - life.t_spawn, 3), "events": [e for _, e in life.events]})
            out("cycle %3d: %-44s landed %-6s after %5.2f s while %-8s started %d, stopped %d%s" % (
                cycle, describe_plan(plan), landed, t_kill - life.t_spawn, phase,
                len(life.seen("transaction_started")), len(life.seen("transaction_stopped")),
                ", journal problems %d" % len(life.seen("journal_problem")) if life.seen("journal_problem") else ""))
        server.faults.set_default_random(None)  # the last run delivers in peace
        final = await drain(csms_url, state_dir, link.path_a, plant, log, final_timeout, extra)
        await asyncio.sleep(0.2)  # the last answers into the ledger
        st = server.storage
        report = analyse(st.list_transactions(charger_id=CP_ID, limit=1000000), st.ledger(CP_ID), plant.segments,
                         kills, plant.full_power_w(), final, withheld_answers(os.path.join(workdir, "ocpp.jsonl")))
        report["faults_injected"] = server.faults.of(CP_ID).injected
    finally:
        log.close()
        await server.stop()
        meter.stop()
        link.close()
    report["seed"] = seed
    report["cycles"] = cycles
    report["duration_s"] = round(time.monotonic() - t0, 1)
    report["driver"] = stats
    report["violations"].extend(problems)
    for line in render(report):
        out(line)
    return report


async def _driver_failure(driver, problems, cycle):
    """Waits for the (cancelled) driver to end; a failure of its own is a problem."""
    try:
        await driver
    except (Gone, asyncio.TimeoutError, asyncio.CancelledError):
        pass  # killed under it
    except Exception as e:
        problems.append("cycle %d: the session driver failed: %r" % (cycle, e))


async def drain(csms_url, state_dir, meter_port, plant, log, timeout, extra=()):
    """The charger once more, left alone until its queue is empty; then its
    queue counters (and the kill that ends it)."""
    life = Life(0, plant, log)
    log.write("== final run: deliver everything\n")
    await life.spawn(csms_url, state_dir, meter_port, extra)
    try:
        await life.open_console()
        await asyncio.wait_for(life.boot_accepted.wait(), timeout)
        end = time.monotonic() + timeout
        while True:
            q = await life.cmd("queue")
            if q["queued"] == 0 and q["open"] == 0:
                break
            if time.monotonic() > end:
                break
            await asyncio.sleep(0.1)
        return {"queue": q, "journal_problems": len(life.seen("journal_problem"))}
    finally:
        await life.kill()


# ---- the comparison ---------------------------------------------------------------------


def withheld_answers(path):
    """{messageId: why} for the CALLs whose answer the CSMS's fault
    injection kept back (no_answer, drop) or sent after the charger's
    MessageTimeout (delay): the charger rightly sends those again."""
    out = {}
    try:
        f = open(path)
    except OSError:
        return out
    with f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            fault = r.get("fault")
            if r.get("dir") != "out" or not fault or r.get("type") not in ("CALLRESULT", "CALLERROR"):
                continue
            if fault in ("no_answer", "drop"):
                out[r["id"]] = "its answer was withheld by an injected %s" % fault
            elif fault == "delay" and r.get("delay_s", 0) >= FAULT_TIMEOUT_S - 0.25:
                out[r["id"]] = "its answer was delayed %.1f s by an injected fault, past MessageTimeout" % r["delay_s"]
    return out


def _epoch(iso):
    """Epoch seconds of an ISO 8601 UTC time with optional fraction."""
    if iso is None:
        return None
    text = iso.rstrip("Z")
    frac = 0.0
    if "." in text:
        text, f = text.split(".", 1)
        frac = float("0." + f)
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")) + frac


def _energy_values(payload):
    """(epoch seconds, Wh) of every Energy.Active.Import.Register sample."""
    out = []
    for mv in payload.get("meterValue") or payload.get("transactionData") or []:
        t = _epoch(mv.get("timestamp"))
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                v = float(sv["value"])
                if sv.get("unit") == "kWh":
                    v *= 1000
                out.append((t, v))
    return out


def analyse(txs, ledger, segments, kills, power_w, final, withheld=None):
    """Compares the CSMS's sessions and ledger with the meter's truth.

    txs: the CSMS transactions (storage rows); ledger: its ledger rows;
    segments: [t_on, wh_on, t_off, wh_off] per contactor closing; kills:
    [{"time", "wh", ...}]; power_w: the power while charging; final: the
    last run's queue ({"queue": {...}}); withheld: {messageId: why} of the
    answers fault injection kept back (see withheld_answers()). Returns the
    report dict."""
    withheld = withheld or {}
    wh_s = power_w / 3600.0
    bound_local = wh_s * (METER_S + SLACK_S) + TOLERANCE_WH
    bound_powerloss = wh_s * (SAMPLE_S + METER_S + SLACK_S) + TOLERANCE_WH
    bound_orphan_segment = wh_s * SLACK_S + TOLERANCE_WH
    v = []  # violations, one line each
    counts = {}
    for row in ledger:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    sessions = [t for t in txs if not t["orphan"]]
    by_id = dict((t["id"], t) for t in txs)

    # 1. StartTransactions without a Stop.
    open_sessions = [t for t in sessions if t["status"] != "stopped"]
    for t in open_sessions:
        v.append("session %d (started %s) has no StopTransaction" % (t["id"], t["start_time"]))

    # 2. Wrong transactionIds.
    wrong = []
    for row in ledger:
        o = row["outcome"]
        if o in ("stop_unknown", "stop_minus_one", "conflicting_stop", "invalid"):
            wrong.append("ledger %d: %s %s" % (row["seq"], row["action"], o))
    for row in ledger:
        if row["action"] not in ("MeterValues", "StopTransaction") or row["outcome"] not in ("meter_values", "duplicate", "stopped", "duplicate_stop"):
            continue
        p = row["payload"]
        tid = p.get("transactionId")
        if row["action"] == "MeterValues" and tid is None:
            continue  # not tied to a transaction (clock-aligned outside a session)
        tx = by_id.get(tid)
        if tx is None or tx["orphan"]:
            wrong.append("ledger %d: %s names transaction %r the CSMS never started" % (row["seq"], row["action"], tid))
            continue
        lo, hi = float(tx["meter_start"]), tx["meter_stop"]
        t_lo, t_hi = _epoch(tx["start_time"]), _epoch(tx["stop_time"])
        samples = _energy_values(p)
        if row["action"] == "StopTransaction":
            samples.append((_epoch(p["timestamp"]), float(p["meterStop"])))
        for t, wh in samples:
            if wh < lo - TOLERANCE_WH or (hi is not None and wh > float(hi) + TOLERANCE_WH):
                wrong.append("ledger %d: %s for transaction %d reads %.0f Wh, outside its %.0f..%s Wh" % (
                    row["seq"], row["action"], tid, wh, lo, hi))
            elif t is not None and (t < t_lo - 0.001 or (t_hi is not None and t > t_hi + 0.001)):
                wrong.append("ledger %d: %s for transaction %d is stamped %s, outside its session" % (
                    row["seq"], row["action"], tid, t))
    v.extend(wrong)

    # 3. Duplicates, each explained by a kill between it and the copy before.
    kill_times = sorted(k["time"] for k in kills)
    last_copy = {}  # the latest copy of each message seen so far
    duplicates = []
    for row in ledger:
        o = row["outcome"]
        if o in ("started", "duplicate_start"):
            key = ("start", row["transaction_id"])
        elif o in ("stopped", "duplicate_stop"):
            key = ("stop", row["transaction_id"])
        elif o in ("meter_values", "duplicate") and row["digest"]:
            key = ("mv", row["digest"])
        else:
            continue
        prev = last_copy.get(key)
        last_copy[key] = row
        if o not in ("duplicate_start", "duplicate_stop", "duplicate"):
            continue
        entry = {"seq": row["seq"], "action": row["action"], "outcome": o, "transaction_id": row["transaction_id"]}
        duplicates.append(entry)
        if prev is None:
            entry["explained"] = None
            v.append("ledger %d: %s with no first copy" % (row["seq"], o))
            continue
        t1, t2 = _epoch(prev["received_at"]), _epoch(row["received_at"])
        # The kill that ended the run which sent the copy before: after it
        # sent it, possibly before the CSMS read it (frames written just
        # before a SIGKILL still arrive). The message ids tell the runs apart
        # (a random prefix per boot).
        between = [k for k in kill_times if t1 - 1.0 <= k <= t2 + 0.002]
        other_run = _run_of(prev.get("message_id")) != _run_of(row.get("message_id"))
        if prev.get("message_id") in withheld:
            entry["explained"] = "copy of ledger %d: %s; resent" % (prev["seq"], withheld[prev["message_id"]])
        elif between and other_run:
            ms = (between[-1] if between[-1] <= t1 else [k for k in between if k >= t1 - 0.002][0]) - t1
            ms = round(ms * 1000, 1)
            entry["kill_after_ms"] = ms
            if ms >= 0:
                when = "the kill %.0f ms after the CSMS stored it cut its answer off" % ms
            else:
                when = "the kill came %.0f ms before the CSMS read it (in flight; sent just before)" % -ms
            entry["explained"] = "copy of ledger %d: %s, before the charger recorded an answer; " \
                "resent after the restart" % (prev["seq"], when)
        else:
            entry["explained"] = None
            near = [round(k - t1, 3) for k in kill_times if t1 - 5 <= k <= t2 + 5]
            v.append("ledger %d: %s of ledger %d without a kill in between (%s to %s; kills at %s s from the first)" % (
                row["seq"], o, prev["seq"], prev["received_at"], row["received_at"], near))

    # 4. Energy: each session against the contactor closing it ran in.
    matched = {}
    energy = {"true_wh": 0.0, "billed_wh": 0.0, "start_err": [], "stop_local": [], "stop_powerloss": []}
    for t in sessions:
        start = _epoch(t["start_time"])
        # The closing nearest the start: the charger stamps the start when
        # its contactor reports closed, the harness sees the coil a little
        # before or (on a loaded host) after that.
        seg_i = None
        for i, s in enumerate(segments):
            if s[0] - SLACK_S <= start <= (s[2] if s[2] is not None else start) + 0.05:
                if seg_i is None or abs(s[0] - start) < abs(segments[seg_i][0] - start):
                    seg_i = i
        if seg_i is None:
            v.append("session %d started at %s with no contactor closing at that time" % (t["id"], t["start_time"]))
            continue
        if seg_i in matched:
            v.append("sessions %d and %d both claim one contactor closing" % (matched[seg_i], t["id"]))
            continue
        matched[seg_i] = t["id"]
        s = segments[seg_i]
        err = float(t["meter_start"]) - s[1]
        energy["start_err"].append(err)
        if abs(err) > bound_local:
            v.append("session %d: meterStart %.0f Wh, the register was %.1f Wh when the contactor closed" % (t["id"], float(t["meter_start"]), s[1]))
        if t["status"] != "stopped" or s[3] is None:
            continue
        energy["billed_wh"] += float(t["meter_stop"]) - float(t["meter_start"])
        deficit = s[3] - float(t["meter_stop"])
        powerloss = t["stop_reason"] == "PowerLoss"
        energy["stop_powerloss" if powerloss else "stop_local"].append(deficit)
        bound = bound_powerloss if powerloss else bound_local
        if deficit < -TOLERANCE_WH:
            v.append("session %d: meterStop %.0f Wh is above the register at the end (%.1f Wh)" % (t["id"], float(t["meter_stop"]), s[3]))
        elif deficit > bound:
            v.append("session %d (%s): meterStop %.0f Wh, the register reached %.1f Wh: %.1f Wh unbilled, bound %.1f Wh" % (
                t["id"], t["stop_reason"], float(t["meter_stop"]), s[3], deficit, bound))
    unmatched = []
    for i, s in enumerate(segments):
        if s[3] is None:
            continue
        energy["true_wh"] += s[3] - s[1]
        if i not in matched:
            unmatched.append(s[3] - s[1])
    lost_stops = [e for e in unmatched if e > bound_orphan_segment]
    for e in lost_stops:
        v.append("%.1f Wh flowed in a contactor closing no stopped session covers" % e)
    lost_stops_count = len(lost_stops) + len(open_sessions)

    q = (final or {}).get("queue") or {}
    if not final or q.get("queued") != 0 or q.get("open") != 0 or q.get("parked") != 0:
        v.append("the final run did not empty the charger's queue: %r" % (q,))

    return {
        "kill_list": [dict((k, x[k]) for k in ("cycle", "time", "plan", "landed", "phase", "life_s") if k in x) for x in kills],
        "kills": len(kills),
        "kill_phases": _count(k["phase"] for k in kills),
        "kill_plans": _count(k["plan"][0] if k["plan"][0] == "timed" else "answer " + k["plan"][1] for k in kills),
        "journal_problems": sum(1 for k in kills for e in k["events"] if e["event"] == "journal_problem"),
        "sessions": len(sessions),
        "stop_reasons": _count(t["stop_reason"] for t in sessions if t["status"] == "stopped"),
        "ledger": counts,
        "starts_without_stop": len(open_sessions),
        "lost_stops": lost_stops_count,
        "wrong_transaction_ids": len(wrong),
        "duplicates": duplicates,
        "unexplained_duplicates": sum(1 for d in duplicates if not d["explained"]),
        "segments": len([s for s in segments if s[3] is not None]),
        "segments_without_session": len(unmatched),
        "segments_without_session_wh": round(sum(unmatched), 2),
        "energy": energy,
        "power_w": round(power_w, 1),
        "bounds_wh": {"local": round(bound_local, 1), "powerloss": round(bound_powerloss, 1),
                      "no_session": round(bound_orphan_segment, 1)},
        "final_queue": q,
        "closings": [[round(x, 3) if x is not None else None for x in seg] for seg in segments],
        "violations": v,
    }


def _run_of(message_id):
    """The agent's messageIds are <random per-boot prefix>-<counter>."""
    return message_id.rsplit("-", 1)[0] if message_id else None


def _count(items):
    out = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _stats(values):
    if not values:
        return "none"
    return "%d, mean %.2f Wh, max %.2f Wh" % (len(values), sum(values) / len(values), max(values))


def render(r):
    e = r["energy"]
    lines = [
        "",
        "chaos: seed %d, %d cycles, %d kills (SIGKILL), %d sessions at the CSMS, %.0f s" % (
            r["seed"], r["cycles"], r["kills"], r["sessions"], r["duration_s"]),
        "  kills by plan:  %s" % json.dumps(r["kill_plans"], sort_keys=True),
        "  kills by phase: %s" % json.dumps(r["kill_phases"], sort_keys=True),
        "  journal problems reported at boot: %d (SIGKILL ends the process, not the kernel: a write that" % r["journal_problems"],
        "    returned stays; torn writes after a real power cut are what the journal's own tests cut)",
        "  stop reasons:   %s" % json.dumps(r["stop_reasons"], sort_keys=True),
        "  CSMS ledger:    %s" % json.dumps(r["ledger"], sort_keys=True),
    ]
    if r.get("faults_injected"):
        lines.append("  CSMS faults:    %s" % json.dumps(r["faults_injected"], sort_keys=True))
    lines += [
        "",
        "  StartTransactions without a Stop   %d" % r["starts_without_stop"],
        "  lost StopTransactions              %d" % r["lost_stops"],
        "  wrong transactionIds               %d" % r["wrong_transaction_ids"],
        "  duplicates                         %d (unexplained %d)" % (len(r["duplicates"]), r["unexplained_duplicates"]),
    ]
    for d in r["duplicates"]:
        lines.append("    ledger %d %s %s (tx %s): %s" % (d["seq"], d["action"], d["outcome"], d["transaction_id"],
                                                      d["explained"] or "UNEXPLAINED"))
    lines += [
        "",
        "  energy (the meter is the truth, %.0f W while charging):" % r["power_w"],
        "    delivered %.1f Wh in %d contactor closings, billed %.1f Wh" % (e["true_wh"], r["segments"], e["billed_wh"]),
        "    closings without a session (killed between the contactor and the journal): %d, %.2f Wh (bound %.1f Wh each)" % (
            r["segments_without_session"], r["segments_without_session_wh"], r["bounds_wh"]["no_session"]),
        "    meterStart minus the register at the closing: %s" % _stats(e["start_err"]),
        "    register at the end minus meterStop, stopped normally: %s (bound %.1f Wh: one meter reading interval)" % (
            _stats(e["stop_local"]), r["bounds_wh"]["local"]),
        "    register at the kill minus meterStop, PowerLoss: %s (bound %.1f Wh)" % (
            _stats(e["stop_powerloss"]), r["bounds_wh"]["powerloss"]),
        "    After a kill the session ends with reason PowerLoss and meterStop = the last reading the",
        "    charger journalled, with one checkpoint per MeterValueSampleInterval (%d s) from a meter read" % SAMPLE_S,
        "    every %.0f s: the energy after it is not billed, at most (sample interval + meter interval)" % METER_S,
        "    x power, plus scheduling slack (%.1f s). A normal stop takes the last reading, up to one meter" % SLACK_S,
        "    interval old. These sessions last 0.3 to 2 s, so those seconds are a large share of what they",
        "    deliver here, and a small one of a real session. Nothing is billed twice: each meterStart",
        "    equals the register when the contactor closed.",
        "",
        "  final run: %s" % json.dumps(r["final_queue"], sort_keys=True),
    ]
    if r["violations"]:
        lines.append("")
        lines.append("  VIOLATIONS (%d):" % len(r["violations"]))
        for x in r["violations"]:
            lines.append("    " + x)
    else:
        lines.append("  every check holds")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m host_tools.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workdir", default="build/chaos")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--faults", action="store_true", help="the CSMS also injects random faults (delays, lost answers, drops, CALLERRORs)")
    args = p.parse_args(argv)
    try:
        report = asyncio.run(run(args.cycles, args.seed, args.workdir, out=_say, faults=args.faults))
    except KeyboardInterrupt:
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    return 1 if report["violations"] else 0


def _say(line):
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
