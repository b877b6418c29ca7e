"""The bench CSMS as a subprocess (python -m host_tools.csms) driven by its
command-line client (python -m host_tools.csms.cli) over real HTTP."""
import json
import re
import signal
import subprocess
import sys

from tests.support import repo_root


def _cli(url, *args):
    return subprocess.run([sys.executable, "-m", "host_tools.csms.cli", "--url", url] + list(args),
                          cwd=repo_root(), capture_output=True, text=True, timeout=60)


def test_server_subprocess_and_cli_client(tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "host_tools.csms", "--port", "0", "--db", str(tmp_path / "csms.sqlite"),
         "--rate-limit", "read=1/1", "--api-token", "ops:tok", "--id-tag", "TAG1"],
        cwd=repo_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        url = re.search(r"API (http://[\d.:]+)/api", line).group(1)
        done = _cli(url, "--token", "tok", "--request-id", "cli-req-1", "chargers")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"chargers": []}
        # Over the limit of 1 read a second: 429, wait Retry-After, then the answer.
        done = _cli(url, "--token", "tok", "chargers")
        assert done.returncode == 0, done.stderr
        assert "rate limited (429); retrying in 1 s (attempt 1 of 3)" in done.stderr
        done = _cli(url, "--token", "tok", "--retries", "0", "sessions")
        assert done.returncode == 1
        assert done.stderr.startswith("HTTP 429 Too many requests: Rate limit of 1 requests per 1 s")
        assert "  retry after: 1 s" in done.stderr
        done = _cli(url, "--token", "tok", "stop", "999")
        assert done.returncode == 1
        assert done.stderr.splitlines()[0] == "HTTP 404 Not Found: User session with this id was not found"
        assert "  instance:   /api/sessions/999/stop" in done.stderr
        done = _cli(url, "boot-policy", "CP9", "Pending")
        assert done.returncode == 1 and done.stderr.startswith("HTTP 401 Unauthorized")
        done = _cli(url, "--token", "tok", "boot-policy", "CP9", "Pending", "--retry-interval", "9")
        assert done.returncode == 0 and json.loads(done.stdout)["retryInterval"] == 9
        done = _cli(url, "--token", "tok", "id-tags", "*")
        assert json.loads(done.stdout)["idTags"] == [{"idTag": "TAG1", "status": "Accepted"}]
        done = _cli(url, "--token", "tok", "fault", "CP9", '{"kind": "call_error", "code": "Nope"}')
        assert done.returncode == 1
        assert "  field code: Unknown CALLERROR code" in done.stderr
        done = _cli("http://127.0.0.1:1", "health")
        assert done.returncode == 3
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=10)
    assert server.returncode == 0
    # Every log line of a request carries its request id.
    assert re.search(r"INFO csms\.api req=cli-req-1 GET /api/chargers 200 ", err), err
