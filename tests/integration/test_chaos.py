"""The chaos harness (host_tools/chaos.py): a short run with real kills, and
its checker on hand-made records, each with one billing fault planted, so
a run that reports "every check holds" is known to look."""
import asyncio
import copy

from host_tools import chaos

SEED = 20240607
T = 1790000000.0  # epoch seconds at the first contactor closing
W = chaos.DEMAND_A * 230.0 * 0.99 * 3  # the plant's power while charging


def iso(t):
    return chaos.time.strftime("%Y-%m-%dT%H:%M:%S", chaos.time.gmtime(t)) + ".%03dZ" % (int(round(t * 1000)) % 1000)


def test_twenty_kill_cycles_lose_nothing(tmp_path):
    """20 cycles of sessions with SIGKILL at random moments: no Start
    without a Stop, no lost Stop, no wrong transactionId, every duplicate
    explained by a kill, meter readings within their bounds."""
    lines = []
    report = asyncio.run(chaos.run(cycles=20, seed=SEED, workdir=str(tmp_path / "chaos"), out=lines.append, max_life_s=3.0))
    text = "\n".join(lines)
    assert report["violations"] == [], text
    assert report["kills"] == 20 and report["sessions"] >= 10, text
    assert (report["starts_without_stop"], report["lost_stops"], report["wrong_transaction_ids"]) == (0, 0, 0)
    assert report["unexplained_duplicates"] == 0
    assert report["stop_reasons"].get("PowerLoss", 0) >= 1, text  # some kills hit a running session
    assert report["final_queue"]["queued"] == 0 and report["final_queue"]["parked"] == 0
    assert "every check holds" in text and "seed %d" % SEED in text


# ---- the checker on hand-made records -------------------------------------------------


def world():
    """Two sessions. 11 closes the contactor at T for 10 s and stops
    normally; 12 starts at T+20, a kill at T+25 cuts it, the next run
    sends its Stop (reason PowerLoss, the last checkpoint) at T+27 and is
    killed before it records the answer, so the run after sends the Stop
    again at T+29. One MeterValues each. Message ids carry the run."""
    wh = W / 3600.0
    segments = [
        [T, 5000.0, T + 10, 5000.0 + 10 * wh],
        [T + 20, 5000.0 + 10 * wh, T + 25, 5000.0 + 15 * wh],
    ]
    s1_stop = int(5000 + 10 * wh - 1)  # the reading half a second before the stop
    s2_start = int(round(5000 + 10 * wh))
    s2_stop = int(5000 + 14 * wh)  # the checkpoint a second before the kill
    txs = [
        {"id": 11, "orphan": 0, "status": "stopped", "start_time": iso(T + 0.08), "stop_time": iso(T + 10),
         "meter_start": 5000, "meter_stop": s1_stop, "stop_reason": "Local"},
        {"id": 12, "orphan": 0, "status": "stopped", "start_time": iso(T + 20.08), "stop_time": iso(T + 24),
         "meter_start": s2_start, "meter_stop": s2_stop, "stop_reason": "PowerLoss"},
    ]
    stop2 = {"transactionId": 12, "meterStop": s2_stop, "timestamp": iso(T + 24), "reason": "PowerLoss"}

    def mv(tid, t, v):
        return {"connectorId": 1, "transactionId": tid, "meterValue": [{"timestamp": iso(t), "sampledValue": [
            {"value": "%.1f" % v, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]}

    ledger = [
        {"seq": 1, "message_id": "aa-5", "outcome": "started", "action": "StartTransaction", "transaction_id": 11, "digest": None,
         "received_at": iso(T + 0.1), "payload": {}},
        {"seq": 2, "message_id": "aa-6", "outcome": "meter_values", "action": "MeterValues", "transaction_id": 11, "digest": "m1",
         "received_at": iso(T + 5), "payload": mv(11, T + 5, 5000 + 5 * wh)},
        {"seq": 3, "message_id": "aa-7", "outcome": "stopped", "action": "StopTransaction", "transaction_id": 11, "digest": "s1",
         "received_at": iso(T + 10.1), "payload": {"transactionId": 11, "meterStop": s1_stop, "timestamp": iso(T + 10), "reason": "Local"}},
        {"seq": 4, "message_id": "cc-3", "outcome": "started", "action": "StartTransaction", "transaction_id": 12, "digest": None,
         "received_at": iso(T + 20.1), "payload": {}},
        {"seq": 5, "message_id": "cc-4", "outcome": "meter_values", "action": "MeterValues", "transaction_id": 12, "digest": "m2",
         "received_at": iso(T + 23), "payload": mv(12, T + 23, s2_start + 1 * wh)},
        {"seq": 6, "message_id": "dd-5", "outcome": "stopped", "action": "StopTransaction", "transaction_id": 12, "digest": "s2",
         "received_at": iso(T + 27), "payload": stop2},
        {"seq": 7, "message_id": "ee-4", "outcome": "duplicate_stop", "action": "StopTransaction", "transaction_id": 12, "digest": "s2",
         "received_at": iso(T + 29), "payload": stop2},
    ]
    kills = [{"time": T + 25, "phase": "charging", "plan": ("timed", 3.0), "events": []},
             {"time": T + 27.001, "phase": "idle", "plan": ("answer", "StopTransaction", 1, 0.0), "events": []}]
    final = {"queue": {"queued": 0, "open": 0, "parked": 0}}
    return txs, ledger, segments, kills, final


def check(txs, ledger, segments, kills, final):
    return chaos.analyse(txs, ledger, segments, kills, W, final)


def test_checker_passes_a_clean_world():
    r = check(*world())
    assert r["violations"] == []
    assert (r["sessions"], len(r["duplicates"]), r["unexplained_duplicates"]) == (2, 1, 0)
    assert r["duplicates"][0]["kill_after_ms"] == 1.0
    assert r["stop_reasons"] == {"Local": 1, "PowerLoss": 1}
    assert r["energy"]["stop_powerloss"] and r["energy"]["stop_local"]


def test_checker_flags_a_start_without_a_stop():
    txs, ledger, segments, kills, final = world()
    txs[1].update(status="active", meter_stop=None, stop_time=None, stop_reason=None)
    ledger = [x for x in ledger if x["seq"] not in (6, 7)]
    r = check(txs, ledger, segments, kills, final)
    assert (r["starts_without_stop"], r["lost_stops"]) == (1, 1)
    assert "session 12" in r["violations"][0]


def test_checker_flags_energy_no_session_covers():
    txs, ledger, segments, kills, final = world()
    segments.append([T + 40, segments[-1][3], T + 50, segments[-1][3] + 10 * W / 3600.0])
    r = check(txs, ledger, segments, kills, final)
    assert r["lost_stops"] == 1 and r["segments_without_session"] == 1
    # A closing cut before the journal had the transaction carries next to nothing: not a loss.
    segments[-1][3] = segments[-1][1] + 0.3
    assert check(txs, ledger, segments, kills, final)["violations"] == []


def test_checker_flags_wrong_transaction_ids():
    txs, ledger, segments, kills, final = world()
    bad = copy.deepcopy(ledger)
    bad[4]["payload"]["transactionId"] = 11  # session 12's reading filed under 11
    r = check(txs, bad, segments, kills, final)
    assert r["wrong_transaction_ids"] == 1 and "outside" in r["violations"][0]
    bad = copy.deepcopy(ledger)
    bad[4]["payload"]["transactionId"] = 0  # never substituted
    assert check(txs, bad, segments, kills, final)["wrong_transaction_ids"] == 1
    bad = copy.deepcopy(ledger)
    bad[5]["outcome"] = "stop_unknown"
    assert check(txs, bad, segments, kills, final)["wrong_transaction_ids"] == 1


def test_checker_flags_a_duplicate_no_kill_explains():
    txs, ledger, segments, kills, final = world()
    r = check(txs, ledger, segments, kills[:1], final)
    assert r["unexplained_duplicates"] == 1
    assert "without a kill in between" in r["violations"][0]
    # A kill in between, but both copies from the same run of the charger.
    ledger[6]["message_id"] = "dd-6"
    assert check(txs, ledger, segments, kills, final)["unexplained_duplicates"] == 1


def test_checker_explains_a_duplicate_sent_just_before_the_kill():
    txs, ledger, segments, kills, final = world()
    kills[1]["time"] = T + 26.990  # the charger died with the Stop still in flight
    r = check(txs, ledger, segments, kills, final)
    assert r["violations"] == [] and r["duplicates"][0]["kill_after_ms"] == -10.0


def test_checker_explains_a_duplicate_by_a_withheld_answer():
    txs, ledger, segments, kills, final = world()
    ledger[6]["message_id"] = "dd-6"  # the same run sent it again: its answer never came
    r = chaos.analyse(txs, ledger, segments, kills[:1], W, final, {"dd-5": "its answer was withheld by an injected no_answer"})
    assert r["violations"] == [] and "withheld" in r["duplicates"][0]["explained"]


def test_checker_flags_meter_stop_beyond_its_bound():
    txs, ledger, segments, kills, final = world()
    stop = ledger[5]["payload"]  # the Stop and its duplicate

    def meter_stop(delta):
        txs[1]["meter_stop"] += delta
        stop["meterStop"] += delta

    meter_stop(-8)  # 8 Wh more unbilled: past (sample + meter interval + slack) x power
    r = check(txs, ledger, segments, kills, final)
    assert len(r["violations"]) == 1 and "unbilled" in r["violations"][0]
    meter_stop(20)  # above what the meter ever counted
    r = check(txs, ledger, segments, kills, final)
    assert len(r["violations"]) == 1 and "above the register" in r["violations"][0]


def test_checker_flags_a_queue_left_behind():
    txs, ledger, segments, kills, final = world()
    final["queue"]["parked"] = 1
    assert "did not empty" in check(txs, ledger, segments, kills, final)["violations"][0]
