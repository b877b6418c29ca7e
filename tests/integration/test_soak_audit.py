# The soak's reconciliation (host_tools/soak_audit.py) on hand-made traces
# and ledgers: a clean session passes, and each kind of fault it must catch
# is counted where it belongs.
import json

from host_tools.soak_audit import Audit, read_trace, reconnects


def trace(tmp_path, records):
    path = tmp_path / "trace.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return read_trace(str(path))


START = {"connectorId": 1, "idTag": "T", "meterStart": 100, "timestamp": 1}
METER = {"connectorId": 1, "transactionId": 0, "meterValue": []}
STOP = {"transactionId": 0, "meterStop": 350, "timestamp": 2, "reason": "Local"}


def session():
    """One session: Start (answered), MeterValues (first try's connection
    lost after the CSMS processed it, resent), Stop; the contactor closed at
    100.2 Wh and opened at 349.9 Wh. Returns (trace records, ledger rows, transactions)."""
    recs = [
        ["h", "A", 1.0, True, 100.2],
        ["q", "A", 1.0, 1, "StartTransaction", 1, START],
        ["c", "A", 1.0, "a1", "StartTransaction"], ["s", "A", 1.0, 1, "a1"], ["r", "A", 1.1, 1, "ok", 7],
        ["q", "A", 2.0, 2, "MeterValues", 1, METER],
        ["c", "A", 2.0, "b1", "MeterValues"], ["s", "A", 2.0, 2, "b1"], ["r", "A", 2.1, 2, "lost", None],
        ["c", "A", 3.0, "b2", "MeterValues"], ["s", "A", 3.0, 2, "b2"], ["r", "A", 3.1, 2, "ok", None],
        ["q", "A", 4.0, 3, "StopTransaction", 1, STOP],
        ["h", "A", 4.0, False, 349.9],
        ["c", "A", 4.0, "c1", "StopTransaction"], ["s", "A", 4.0, 3, "c1"], ["r", "A", 4.1, 3, "ok", None],
        ["f", "A", 5.0, {"queued": [], "parked": [], "drained": True, "counters": {}, "energy": 349.9}],
    ]
    rows = [
        row(1, "a1", "StartTransaction", START, "started", 7),
        row(2, "b1", "MeterValues", dict(METER, transactionId=7), "meter_values", 7),
        row(3, "b2", "MeterValues", dict(METER, transactionId=7), "duplicate", 7),
        row(4, "c1", "StopTransaction", dict(STOP, transactionId=7), "stopped", 7),
    ]
    txs = [{"id": 7, "charger_id": "A", "meter_start": 100, "meter_stop": 350, "status": "stopped", "orphan": 0}]
    return recs, rows, txs


def row(seq, msg_id, action, payload, outcome, tid):
    return {"seq": seq, "charger_id": "A", "message_id": msg_id, "action": action, "payload": payload,
            "outcome": outcome, "transaction_id": tid}


def audit(tmp_path, recs, rows, txs):
    chargers, _ = trace(tmp_path, recs)
    a = Audit(rows, txs)
    for c in chargers.values():
        a.charger(c)
    return a.finish()


BAD_KEYS = ("lost", "out_of_order", "wrong_transaction_ids", "unexplained_duplicates", "resent_after_answer",
            "unrecognised_duplicates", "phantom_rows", "billing_mismatches", "meter_mismatches", "queued_at_end",
            "parked")


def bad(n):
    return dict((k, n[k]) for k in BAD_KEYS if n[k])


def test_a_clean_session_with_one_duplicate_after_a_lost_connection(tmp_path):
    n = audit(tmp_path, *session())
    assert bad(n) == {} and n["problems"] == []
    assert (n["messages"], n["tries"], n["duplicates"], n["duplicate_causes"]) == (3, 4, 1, {"lost": 1})
    assert (n["sessions_started"], n["sessions_stopped"], n["billed_wh"]) == (1, 1, 250)
    assert abs(n["metered_wh"] - 249.7) < 1e-9 and n["outside_sessions_wh"] == 100.2


def test_a_message_the_csms_never_processed_is_lost(tmp_path):
    recs, rows, txs = session()
    del rows[3]
    txs[0]["status"] = "active"
    n = audit(tmp_path, recs, rows, txs)
    assert n["lost"] == 1 and n["billing_mismatches"] == 1 and n["open_at_end"] == 1
    assert "StopTransaction 3 lost (tries: ok)" in n["problems"][0]
    # Still queued at the end is not lost, but counted.
    recs[-1][3]["queued"] = [3]
    n = audit(tmp_path, recs, rows, txs)
    assert n["lost"] == 0 and n["queued_at_end"] == 1


def test_order_wrong_ids_and_unexplained_duplicates_are_each_counted(tmp_path):
    recs, rows, txs = session()
    rows[0], rows[1] = rows[1], rows[0]  # MeterValues processed before its Start
    assert bad(audit(tmp_path, recs, rows, txs)) == {"out_of_order": 1}

    recs, rows, txs = session()
    rows[3]["payload"]["transactionId"] = 8
    assert bad(audit(tmp_path, recs, rows, txs)) == {"wrong_transaction_ids": 1}

    recs, rows, txs = session()
    recs[4][5] = 9  # the agent learned another transactionId than the CSMS gave
    assert bad(audit(tmp_path, recs, rows, txs)) == {"wrong_transaction_ids": 1}

    recs, rows, txs = session()
    recs[8][4] = "error"  # processed, yet the try ended with a CALLERROR
    assert bad(audit(tmp_path, recs, rows, txs)) == {"unexplained_duplicates": 1}

    recs, rows, txs = session()
    rows[2]["outcome"] = "meter_values"  # the CSMS stored the repeat again
    assert bad(audit(tmp_path, recs, rows, txs)) == {"unrecognised_duplicates": 1}

    recs, rows, txs = session()
    rows.append(row(5, "zz", "MeterValues", METER, "meter_values", None))
    assert bad(audit(tmp_path, recs, rows, txs)) == {"phantom_rows": 1}


def test_the_agent_side_rules_are_checked_from_the_trace(tmp_path):
    recs, rows, txs = session()
    recs[11][4] = "timeout"  # not answered, and yet the Stop went out
    rows[2]["outcome"] = "duplicate"
    n = audit(tmp_path, recs, rows, txs)
    assert n["out_of_order"] == 1 and "tries went out before" in n["problems"][0]

    recs, rows, txs = session()
    recs.insert(12, ["c", "A", 3.5, "b3", "MeterValues"])
    recs.insert(13, ["s", "A", 3.5, 2, "b3"])  # resent after its answer
    recs.insert(14, ["r", "A", 3.6, 2, "ok", None])
    n = audit(tmp_path, recs, rows, txs)
    assert n["resent_after_answer"] == 1


def test_billing_is_checked_against_the_simulated_meter(tmp_path):
    recs, rows, txs = session()
    recs[13][4] = 352.0  # the meter delivered 251.8 Wh, 250 Wh were billed
    n = audit(tmp_path, recs, rows, txs)
    assert bad(n) == {"meter_mismatches": 1} and n["max_meter_diff_wh"] == 1.8

    recs, rows, txs = session()
    txs[0]["meter_stop"] = 351  # the CSMS billed another meterStop than the agent sent
    assert bad(audit(tmp_path, recs, rows, txs)) == {"billing_mismatches": 1}


def test_readings_sent_outside_the_queue_are_told_apart(tmp_path):
    recs, rows, txs = session()
    recs.insert(0, ["c", "A", 0.5, "idle1", "MeterValues"])
    rows.insert(0, row(0, "idle1", "MeterValues", {"connectorId": 1, "meterValue": []}, "meter_values", None))
    n = audit(tmp_path, recs, rows, txs)
    assert bad(n) == {} and n["outside_queue_rows"] == 1


def test_reconnect_histogram_after_a_restart(tmp_path):
    recs = [["e", "A", 1.0, "connected", {}], ["e", "B", 1.0, "connected", {}], ["k", 10.0, "down", 1],
            ["e", "A", 10.1, "disconnected", {}], ["e", "B", 10.1, "disconnected", {}], ["k", 13.0, "up", 1],
            ["e", "A", 11.5, "connect_failed", {}], ["e", "A", 14.2, "connected", {}],
            ["e", "B", 17.9, "connected", {}], ["e", "B", 30.0, "disconnected", {}]]
    chargers, marks = trace(tmp_path, recs)
    (r,) = reconnects(chargers, marks, 40.0)
    assert (r["connected_before"], r["reconnected"], r["first_s"], r["last_s"]) == (2, 2, 4.2, 7.9)
    assert r["largest_bin_share"] == 0.5
    assert r["histogram"][1] == [1, 1, 0] and r["histogram"][4] == [4, 1, 1] and r["histogram"][7] == [7, 1, 1]


def test_memory_summary_after_warm_up():
    from host_tools.soak_audit import memory

    samples = [(0, 20480, 1000, 100, 10), (10, 30720, 5000, 2048, 512), (20, 31744, 5100, 2048, 600),
               (30, 31232, 5050, 2100, 700)]
    m = memory(samples, 10)
    assert (m["first_mb"], m["at_warmup_mb"], m["peak_mb"], m["end_mb"]) == (20.0, 30.0, 31.0, 30.5)
    assert (m["growth_mb"], m["last_half_growth_mb"]) == (0.5, -0.5)
    assert (m["blocks_at_warmup"], m["blocks_peak"], m["blocks_end"]) == (5000, 5100, 5050)
    assert (m["heap_at_warmup_mb"], m["heap_free_end_mb"]) == (2.0, 0.7)
    assert memory(samples[:1], 10) == {"samples": samples[:1], "warmup_s": 10}
