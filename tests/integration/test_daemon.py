"""The shared daemon skeleton: survives failing cycles, serves metrics, stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from devcluster.process import free_port
from tests.metrics import metric
from tests.polling import wait_for

pytestmark = pytest.mark.integration

DAEMON = '''
import sys
from wharf import log
from wharf.daemon import Daemon
from wharf.retry import Retry

class Counter(Daemon):
    interval = 0.01
    backoff = Retry(delay=0.01, max_delay=0.02, jitter=0)

    def __init__(self, path, port):
        super().__init__("counter", metrics_port=port)
        self.path, self.n = path, 0

    def run_cycle(self):
        self.n += 1
        open(self.path, "w").write(str(self.n))
        if self.n % 3 == 0:
            raise ConnectionError("every third cycle fails")

    def close(self):
        open(self.path + ".closed", "w").write("closed")

log.setup("json")
sys.exit(Counter(sys.argv[1], int(sys.argv[2])).run())
'''






def test_daemon_survives_failures_serves_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    script = tmp_path / "counter.py"
    script.write_text(DAEMON)
    state, port = tmp_path / "count", free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(state), str(port)],
                            stderr=subprocess.PIPE, text=True)
    try:
        def enough_cycles() -> bool:
            try:
                return metric(port, 'wharf_daemon_cycles_total{daemon="counter",outcome="error"}') >= 2
            except OSError:
                return False

        wait_for(enough_cycles, timeout=10, what="two failed cycles")
        assert metric(port, 'wharf_daemon_cycles_total{daemon="counter",outcome="ok"}') >= 4
        assert metric(port, 'wharf_daemon_up{daemon="counter"}') == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert '"msg": "cycle failed"' in err and "every third cycle fails" in err
    assert err.rstrip().splitlines()[-1].find('"msg": "stopped"') > 0
    assert (tmp_path / "count.closed").read_text() == "closed"
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1)


def test_metrics_listen_on_the_address_the_settings_name(tmp_path: Path) -> None:
    """WHARF_METRICS_ADDRESS moves every daemon's /metrics off loopback's 127.0.0.1 (here to 127.0.0.2)."""
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "WHARF_METRICS_ADDRESS": "127.0.0.2",
           "CONSUL_HTTP_ADDR": f"127.0.0.1:{free_port()}",  # no Consul: the daemon backs off and keeps serving
           "MARATHON_URL": f"http://127.0.0.1:{free_port()}"}
    proc = subprocess.Popen([sys.executable, "-m", "wharf", "apps", "watch-kv", "--prefix", "x", "--metrics-port",
                             str(port)], env=env, stderr=subprocess.PIPE, text=True)
    def up() -> bool:
        try:
            return metric(port, 'wharf_daemon_up{daemon="apps-watch-kv"}', host="127.0.0.2") == 1
        except OSError:
            return False  # not listening yet

    try:
        wait_for(up, 30, "metrics on 127.0.0.2")
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
