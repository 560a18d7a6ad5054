"""wharf.notify: the event and its line, the body Slack and Mattermost take, delivery in the
background (retries, a dead or hung sink, a full queue, a bounded close), no secret in a log
record, and the settings that configure it."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner
from prometheus_client import REGISTRY

from devcluster.webhook import serving_on_loopback
from tests.polling import wait_for
from wharf import settings
from wharf.cli import cli
from wharf.errors import BadInput
from wharf.log import TextFormatter, fields_of
from wharf.notify import DeliveryDeferred, DeliveryFailed, Event, Notifier, Sink
from wharf.retry import Retry
from wharf.sinks import MailSink, WebhookSink, notifier_from, webhook_body

pytestmark = pytest.mark.unit

QUICK = Retry(delay=0.01, max_delay=0.02, jitter=0, deadline=2.0)
AT = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
DEPLOY = Event("deploy", "/web", "ok", versions=("2026-02-28T10:00:00.000Z", "2026-03-01T11:59:58.120Z"),
               commits=("abc1234f00d", "9f8e7d6c5b"), message="deployed in 2.8s", at=AT)
TOKEN = "T0AAAA/B0BBBB/XsecretXtokenX"
PASSWORD = "hunter2-never-shown"


class FakeSink:
    """A sink that fails its first `fails` tries (or for as long as `down`), may hang until
    released, and records what it delivered."""

    check = "is the fake up?"

    def __init__(self, name: str, fails: int = 0, down: bool = False, hang: bool = False) -> None:
        self.name, self.address = name, f"fake://{name}"
        self.fails, self.down, self.tries = fails, down, 0
        self.delivered: list[Event] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hang:
            self.release.set()

    def deliver(self, event: Event) -> None:
        self.tries += 1
        self.entered.set()
        self.release.wait()
        if self.down or self.tries <= self.fails:
            raise DeliveryDeferred(f"{self.address}: connection refused")
        self.delivered.append(event)


def counted(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def event(n: int) -> Event:
    return Event("sync", f"job-{n}", "ok", message=f"event {n}", at=AT)


def said(caplog: pytest.LogCaptureFixture, sink: str, level: int = logging.INFO) -> list[logging.LogRecord]:
    """The records about `sink` at `level` or above (other tests' sinks may still be at work)."""
    return [r for r in caplog.records if r.levelno >= level and fields_of(r).get("sink") in (sink, None)]


# --- the event, its line, the webhook body ----------------------------------------------------

def test_the_line_says_what_where_from_to_and_which_commits() -> None:
    assert DEPLOY.line() == ("deploy /web ok: 2026-02-28T10:00:00.000Z → 2026-03-01T11:59:58.120Z "
                             "(config abc1234, code 9f8e7d6) — deployed in 2.8s")
    rollback = Event("rollback", "/api", "rolled back", versions=(None, "v7"))
    assert rollback.line() == "rollback /api rolled back: none → v7"
    assert Event("build", "shop", "failed", commits=(None, "ffeeddccbb"), message="make:\n  error 2").line() == \
        "build shop failed (code ffeeddc) — make: error 2"


def test_to_json_is_stable_and_complete() -> None:
    assert DEPLOY.to_json() == {
        "kind": "deploy", "app": "/web", "result": "ok",
        "versions": {"from": "2026-02-28T10:00:00.000Z", "to": "2026-03-01T11:59:58.120Z"},
        "commits": {"config": "abc1234f00d", "code": "9f8e7d6c5b"},
        "message": "deployed in 2.8s", "at": "2026-03-01T12:00:00.250Z"}
    assert list(Event("sync", "nightly", "ok").to_json()) == list(DEPLOY.to_json())


def test_the_webhook_body_is_what_slack_and_mattermost_incoming_webhooks_take() -> None:
    body = json.loads(json.dumps(webhook_body(DEPLOY)))  # JSON all the way
    assert isinstance(body["text"], str) and "\n" not in body["text"]
    assert body == {"text": DEPLOY.line(), "wharf": DEPLOY.to_json()}


# --- delivery --------------------------------------------------------------------------------

def test_retried_until_delivered() -> None:
    sink = FakeSink("retried", fails=2)
    notifier = Notifier([sink], retry=QUICK)
    notifier.send(DEPLOY)
    assert notifier.close(5.0) is True
    assert sink.delivered == [DEPLOY] and sink.tries == 3
    assert counted("wharf_notify_sent_total", sink="retried", outcome="ok") == 1


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


def test_send_returns_at_once_when_sinks_hang(hung_port: int) -> None:
    fake = FakeSink("hung", hang=True)
    notifier = Notifier([WebhookSink(f"http://127.0.0.1:{hung_port}/hooks/{TOKEN}", timeout=30), fake], retry=QUICK)
    times = []
    for n in range(200):
        start = time.perf_counter()
        notifier.send(event(n))
        times.append(time.perf_counter() - start)
    assert fake.entered.wait(5)
    assert max(times) < 0.05, f"slowest send {max(times) * 1000:.1f} ms"
    start = time.perf_counter()
    assert notifier.close(0.2) is False
    assert time.perf_counter() - start < 1.0
    fake.release.set()


def test_a_dead_sink_is_logged_once_and_its_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wharf.notify")
    sink = FakeSink("dead", down=True)
    notifier = Notifier([sink], retry=Retry(delay=0.001, max_delay=0.001, jitter=0, max_tries=2))
    for n in range(30):
        notifier.send(event(n))
    wait_for(lambda: counted("wharf_notify_sent_total", sink="dead", outcome="failed") == 30, 10, "30 given up")
    sink.down = False
    notifier.send(event(30))
    assert notifier.close(5.0)
    records = said(caplog, "dead")
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("WARNING", "cannot deliver notifications"), ("INFO", "notifications delivered again")]
    line = TextFormatter().format(records[0])
    assert "address=fake://dead" in line and "check=" in line and "connection refused" in line
    assert sink.delivered == [event(30)]


def test_a_refusal_is_not_retried() -> None:
    class Refusing(FakeSink):
        def deliver(self, event: Event) -> None:
            self.tries += 1
            raise DeliveryFailed("answered 404: no_service")

    sink = Refusing("refusing")
    notifier = Notifier([sink], retry=QUICK)
    notifier.send(DEPLOY)
    assert notifier.close(5.0) and sink.tries == 1
    assert counted("wharf_notify_sent_total", sink="refusing", outcome="failed") == 1


def test_a_full_queue_drops_the_oldest_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wharf.notify")
    sink = FakeSink("full", hang=True)
    notifier = Notifier([sink], capacity=3, retry=QUICK)
    notifier.send(event(0))
    assert sink.entered.wait(5)  # event 0 is being delivered; 1..6 queue behind it
    for n in range(1, 7):
        notifier.send(event(n))
    assert counted("wharf_notify_dropped_total", sink="full") == 3
    sink.release.set()
    assert notifier.close(5.0)
    assert [e.app for e in sink.delivered] == ["job-0", "job-4", "job-5", "job-6"]
    assert [r.getMessage() for r in said(caplog, "full")] == ["notification queue full, dropping the oldest"]


def test_close_flushes_within_its_bound_and_says_what_it_gave_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wharf.notify")
    slow, fine = FakeSink("close-slow", hang=True), FakeSink("close-fine")
    notifier = Notifier([slow, fine], retry=QUICK)
    for n in range(3):
        notifier.send(event(n))
    start = time.perf_counter()
    assert notifier.close(0.3) is False
    took = time.perf_counter() - start
    assert 0.25 < took < 1.0
    assert len(fine.delivered) == 3
    records = said(caplog, "close-slow")
    assert [r.getMessage() for r in records] == ["notifications not delivered, giving up"]
    assert "left=3" in TextFormatter().format(records[0])
    assert counted("wharf_notify_dropped_total", sink="close-slow") == 2  # one was being delivered
    slow.release.set()
    notifier.send(event(9))  # after close: dropped, no thread, no error
    assert counted("wharf_notify_dropped_total", sink="close-fine") == 1


# --- no secret in any log record ---------------------------------------------------------------

class Answer(BaseHTTPRequestHandler):
    """Answers every POST with the status in its path's first segment, echoing the path."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = int(self.path.split("/")[1])
        body = f"no_service for {self.path}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[int]:
    with serving_on_loopback(Answer) as server:
        yield server.server_address[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_secret_reaches_a_log_record(caplog: pytest.LogCaptureFixture, answering: int) -> None:
    """Every record at every level, wharf's and its libraries', as `wharf.log.setup` leaves them:
    urllib3 held at WARNING (its own debug line names every request's path, for any URL)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")
    refused = free_port()
    sinks: list[Sink] = [WebhookSink(f"http://user:{PASSWORD}@127.0.0.1:{answering}/404/{TOKEN}"),
             WebhookSink(f"http://127.0.0.1:{answering}/503/{TOKEN}?key={PASSWORD}"),
             WebhookSink(f"http://127.0.0.1:{answering}/200/{TOKEN}"),
             WebhookSink(f"https://127.0.0.1:{refused}/services/{TOKEN}"),
             MailSink("127.0.0.1", refused, "wharf@example.org", ("ops@example.org",), "wharf", PASSWORD)]
    notifier = Notifier(sinks, retry=Retry(delay=0.01, max_delay=0.01, jitter=0, max_tries=3))
    for n in range(3):
        notifier.send(event(n))
    assert notifier.close(10.0)
    text = "\n".join(TextFormatter().format(r) for r in caplog.records)
    assert "cannot deliver notifications" in text and f"http://127.0.0.1:{answering}" in text
    assert "answered 404" in text and "answered 503" in text and "connection refused" in text
    for secret in (TOKEN, PASSWORD, "XsecretX"):
        assert secret not in text
    assert all(secret not in repr(s) + s.name + s.address for s in sinks for secret in (TOKEN, PASSWORD))


# --- settings --------------------------------------------------------------------------------

def load(**env: str) -> settings.Settings:
    return settings.load({}, env, None)


@pytest.mark.parametrize(("env", "starts"), [
    ({"WHARF_NOTIFY_WEBHOOK": "https://hooks.example.org/a,ftp://b"}, "WHARF_NOTIFY_WEBHOOK: "),
    ({"WHARF_NOTIFY_SMTP": "mail.example.org"}, "WHARF_NOTIFY_SMTP: "),
    ({"WHARF_NOTIFY_SMTP": "mail.example.org:99999"}, "WHARF_NOTIFY_SMTP: "),
    ({"WHARF_NOTIFY_SMTP": "mail:25", "WHARF_NOTIFY_MAIL_TO": "ops@example.org"}, "WHARF_NOTIFY_MAIL_FROM: needed"),
    ({"WHARF_NOTIFY_SMTP": "mail:25", "WHARF_NOTIFY_MAIL_FROM": "w@example.org"}, "WHARF_NOTIFY_MAIL_TO: needed"),
    ({"WHARF_NOTIFY_SMTP": "mail:25", "WHARF_NOTIFY_MAIL_FROM": "w@example.org", "WHARF_NOTIFY_MAIL_TO": "ops"},
     "WHARF_NOTIFY_MAIL_TO: 'ops' is not a mail address"),
    ({"WHARF_NOTIFY_MAIL_TO": "ops@example.org"}, "WHARF_NOTIFY_MAIL_TO: set, but WHARF_NOTIFY_SMTP"),
    ({"WHARF_NOTIFY_SMTP": "mail:25", "WHARF_NOTIFY_MAIL_FROM": "w@example.org", "WHARF_NOTIFY_MAIL_TO": "o@x.org",
      "WHARF_NOTIFY_SMTP_PASSWORD": PASSWORD}, "WHARF_NOTIFY_SMTP_PASSWORD: set without"),
])
def test_bad_settings_are_refused_in_one_line(env: dict[str, str], starts: str) -> None:
    with pytest.raises(BadInput) as err:
        notifier_from(load(**env))
    assert err.value.message.startswith(starts) and "\n" not in err.value.message
    assert err.value.exit_code == 2 and PASSWORD not in err.value.message


def test_the_cli_refuses_a_bad_value_with_exit_2() -> None:
    result = CliRunner().invoke(cli, ["config", "show"], env={"WHARF_NOTIFY_SMTP": "no-port"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: WHARF_NOTIFY_SMTP: 'no-port' is not host:port"]


def test_no_sink_no_notifier_and_each_sink_from_its_settings() -> None:
    assert notifier_from(load()) is None
    notifier = notifier_from(load(
        WHARF_NOTIFY_WEBHOOK=f"https://hooks.slack.com/services/{TOKEN}, http://127.0.0.1:8065/hooks/abc",
        WHARF_NOTIFY_SMTP="127.0.0.1:2525", WHARF_NOTIFY_SMTP_USER="wharf", WHARF_NOTIFY_SMTP_PASSWORD=PASSWORD,
        WHARF_NOTIFY_MAIL_FROM="wharf@example.org", WHARF_NOTIFY_MAIL_TO="ops@example.org, dev@example.org"))
    assert notifier is not None
    try:
        assert [s.address for s in notifier.sinks] == ["https://hooks.slack.com", "http://127.0.0.1:8065",
                                                       "smtp://127.0.0.1:2525"]
        mail = notifier.sinks[2]
        assert isinstance(mail, MailSink)
        assert (mail.sender, mail.recipients, mail.user, mail.password) == \
            ("wharf@example.org", ("ops@example.org", "dev@example.org"), "wharf", PASSWORD)
    finally:
        notifier.close(0)


def test_config_show_masks_the_webhook_and_the_password() -> None:
    env = {"WHARF_NOTIFY_WEBHOOK": f"https://hooks.slack.com/services/{TOKEN}", "WHARF_NOTIFY_SMTP_PASSWORD": PASSWORD}
    result = CliRunner().invoke(cli, ["config", "show", "--json"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["settings"]
    assert shown["notify_webhook"]["value"] == shown["notify_smtp_password"]["value"] == "********"
    assert TOKEN not in result.output and PASSWORD not in result.output
    assert "--notify-smtp-password" not in CliRunner().invoke(cli, ["--help"]).output
