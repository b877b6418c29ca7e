# The soak in short (make soak runs the long one): 40 emulated chargers in one
# process through the chaos proxy, the bench CSMS in its own process with
# random faults and one restart, sessions all the time for 30 s, then the
# drain and the reconciliation. Every figure asserted comes from the JSON
# result of `python -m host_tools.soak`.
import json
import subprocess
import sys

from tests.support import repo_root

CHARGERS = 40


def test_short_soak_loses_nothing_and_reconciles(tmp_path):
    result = tmp_path / "result.json"
    proxy_faults = {
        "probabilities": {"delay": 0.03, "reorder": 0.02, "drop": 0.01, "cut": 0.01, "reset": 0.01, "halfopen": 0.01},
        "delay_ms": [50, 1500], "reorder_ms": [200, 3000], "halfopen_s": 15}
    csms_faults = {"probabilities": {"call_error": 0.03, "delay": 0.03, "no_answer": 0.02, "drop": 0.02,
                                     "malformed": 0.02}, "delay_seconds": [0.2, 2.0], "refuse_seconds": 4}
    cmd = [sys.executable, "-m", "host_tools.soak", "--minutes", "0.5", "--chargers", str(CHARGERS),
           "--session-every", "5", "--sample-interval", "2", "--dir", str(tmp_path / "soak"), "--seed", "3",
           "--warmup", "10", "--rss-every", "1", "--progress-every", "0", "--restart-down", "2",
           "--message-timeout", "5", "--retry-interval", "1", "--ping-interval", "5", "--pong-timeout", "5",
           "--backoff-min", "1", "--backoff-base", "8", "--backoff-max", "10", "--drain-timeout", "60",
           "--proxy-faults", json.dumps(proxy_faults), "--csms-faults", json.dumps(csms_faults),
           "--json", str(result)]
    proc = subprocess.run(cmd, cwd=repo_root(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert result.exists(), out[-4000:]
    r = json.loads(result.read_text())
    n = r["result"]
    failed = [c for c in r["checks"] if not c[1]]
    assert not failed and proc.returncode == 0, (failed, n["problems"], out[-4000:])

    # Traffic and faults really happened.
    assert n["sessions_started"] >= CHARGERS and n["sessions_started"] == n["sessions_stopped"]
    assert n["by_action"]["MeterValues"] > 0 and n["tries"] > n["messages"]  # retries happened
    assert all(v > 0 for v in r["proxy_counts"].values()), r["proxy_counts"]
    assert all(v > 0 for v in r["csms_faults"].values()), r["csms_faults"]
    assert len(r["restarts"]) == 1 and r["proxy_stats"]["upstream_failed"] > 0  # the CSMS was down

    # The counts the soak asserts, one by one.
    assert n["lost"] == 0 and n["queued_at_end"] == 0 and n["parked"] == 0
    assert n["out_of_order"] == 0
    assert n["wrong_transaction_ids"] == 0
    assert n["unexplained_duplicates"] == 0 and n["resent_after_answer"] == 0
    assert n["duplicates"] == sum(n["duplicate_causes"].values())
    assert set(n["duplicate_causes"]) <= {"timeout", "lost"}
    assert n["crashed_agents"] == [] and r["exceptions_printed"] == 0 and r["exceptions_unhandled"] == 0
    assert n["billing_mismatches"] == 0 and n["meter_mismatches"] == 0 and n["orphan_sessions"] == 0
    assert abs(n["billed_wh"] - n["metered_wh"]) <= 1.1 * n["sessions_started"]
    mem = r["memory"]
    assert mem["peak_mb"] - mem["at_warmup_mb"] <= 8.0, mem
    restart = r["reconnects"][0]
    assert restart["reconnected"] == CHARGERS
    assert restart["largest_bin_share"] <= 0.35 and restart["last_s"] - restart["first_s"] >= 3.0, restart

    # The report prints all of it.
    for text in ("lost transaction messages", "duplicates", "crashed agents", "memory (RSS",
                 "reconnects after CSMS restart 1", "s after kill", "SOAK PASSED"):
        assert text in proc.stdout
