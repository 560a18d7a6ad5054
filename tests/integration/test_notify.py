"""wharf.notify against real receivers on 127.0.0.1: an HTTP server standing in for a Slack or
Mattermost incoming webhook, and a small SMTP server (written here: `smtpd` is deprecated and gone
in Python 3.12, and `aiosmtpd` is not installed), each also down for the first seconds."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import socketserver
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from devcluster.webhook import Received, WebhookHandler, receiving, serving_on_loopback
from tests.polling import wait_for
from wharf.notify import Event, Notifier, Sink
from wharf.retry import Retry
from wharf.sinks import MailSink, WebhookSink

pytestmark = pytest.mark.integration

TOKEN = "T0AAAA/B0BBBB/XintegrationX"
PASSWORD = "s3cret-smtp-password"
#: the receiver may be down for a few seconds: tries 0.1, 0.2, 0.4, 0.5, 0.5 ... s apart, for 20 s
PATIENT = Retry(delay=0.1, max_delay=0.5, jitter=0.1, deadline=20.0)


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver on loopback: (its URL, what it received)."""
    with receiving() as (url, received):
        yield url, received


class Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        received: Received = self.server.received  # type: ignore[attr-defined]
        self.say("220 127.0.0.1 ESMTP test receiver")
        sender, recipients = "", []
        while line := self.rfile.readline():
            verb, _, arg = line.decode().strip().partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.say("250-127.0.0.1\r\n250-AUTH PLAIN\r\n250 8BITMIME")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(arg.split()[1]).decode().split("\0")
                self.server.logins.append((user, password))  # type: ignore[attr-defined]
                self.say("235 2.7.0 authenticated")
            elif verb == "MAIL":
                sender = arg.partition(":")[2].split()[0].strip("<>")
                self.say("250 ok")
            elif verb == "RCPT":
                recipients.append(arg.partition(":")[2].split()[0].strip("<>"))
                self.say("250 ok")
            elif verb == "DATA":
                self.say("354 end with <CRLF>.<CRLF>")
                lines = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(data[1:] if data.startswith(b".") else data)
                mail = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                received.add((sender, recipients, mail))
                sender, recipients = "", []
                self.say("250 queued")
            elif verb == "QUIT":
                self.say("221 bye")
                return
            else:  # HELO, RSET, NOOP
                self.say("250 ok")


class SmtpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(kind: str, port: int = 0) -> Iterator[tuple[int, Received, Any]]:
    """An HTTP (`kind` "http") or SMTP receiver on 127.0.0.1: (port, what it received, the server)."""
    handler, server_class = (WebhookHandler, ThreadingHTTPServer) if kind == "http" else (Smtp, SmtpServer)
    with serving_on_loopback(handler, port, server_class, received=Received(), logins=[]) as server:
        yield server.server_address[1], server.received, server


def sink_for(kind: str, port: int) -> Sink:
    if kind == "http":
        return WebhookSink(f"http://127.0.0.1:{port}/services/{TOKEN}")
    return MailSink("127.0.0.1", port, "wharf@example.org", ("ops@example.org", "dev@example.org"), "wharf", PASSWORD)


def events(n: int) -> list[Event]:
    return [Event("deploy", f"/shop/app{i}", "ok", versions=(f"2026-03-01T10:00:0{i}.000Z", f"v{i}"),
                  commits=("3f2a9c1d", None), message=f"deployed in {i}.5s") for i in range(n)]


def test_the_webhook_gets_one_json_message_per_event() -> None:
    with serving("http") as (port, received, _):
        notifier = Notifier([sink_for("http", port)], retry=PATIENT)
        sent = events(5)
        for e in sent:
            notifier.send(e)
        assert notifier.close(10.0)
        assert len(received.items) == 5
        for (path, content_type, body), e in zip(received.items, sent, strict=True):
            assert path == f"/services/{TOKEN}" and content_type == "application/json"
            assert body == {"text": e.line(), "wharf": e.to_json()}


def test_the_mail_server_gets_one_mail_per_event() -> None:
    with serving("smtp") as (port, received, server):
        notifier = Notifier([sink_for("smtp", port)], retry=PATIENT)
        sent = events(3)
        for e in sent:
            notifier.send(e)
        assert notifier.close(10.0)
        assert server.logins == [("wharf", PASSWORD)] * 3
        assert len(received.items) == 3
        for (sender, recipients, mail), e in zip(received.items, sent, strict=True):
            assert (sender, recipients) == ("wharf@example.org", ["ops@example.org", "dev@example.org"])
            assert mail["Subject"] == f"[wharf] {e.line()}"
            assert mail["To"] == "ops@example.org, dev@example.org"
            text = mail.get_content().replace("\r\n", "\n")
            assert text.startswith(e.line() + "\n\n")
            assert json.loads(text.split("\n\n", 1)[1]) == e.to_json()


@pytest.mark.parametrize("kind", ["http", "smtp"])
def test_what_is_sent_while_the_receiver_is_down_arrives_when_it_comes_up(kind: str) -> None:
    port = free_port()
    notifier = Notifier([sink_for(kind, port)], retry=PATIENT)
    sent = events(6)
    for e in sent:
        notifier.send(e)
    time.sleep(2.0)  # the receiver is down for these 2 s: every try is refused
    with serving(kind, port) as (_, received, _):
        assert notifier.close(15.0)
        assert len(received.items) == len(sent)  # none lost, none twice
        apps = [item[2]["wharf"]["app"] if kind == "http" else item[2]["Subject"].split()[2]
                for item in received.items]
        assert apps == [e.app for e in sent]


def latencies(kind: str, n: int) -> list[float]:
    """Seconds from `send` to the receiver having the whole message, one event at a time."""
    with serving(kind) as (port, received, _):
        notifier = Notifier([sink_for(kind, port)], retry=PATIENT)
        took = []
        for i, e in enumerate(events(n)):
            start = time.perf_counter()
            notifier.send(e)
            wait_for(lambda i=i: len(received.times) > i, 10, "the message", interval=0.0005)  # type: ignore[misc]
            took.append(received.times[i] - start)
        notifier.close(5.0)
        return took


@pytest.mark.parametrize("kind", ["http", "smtp"])
def test_delivery_latency_to_a_local_receiver(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    took = sorted(latencies(kind, 50))
    median, p95 = statistics.median(took), took[int(len(took) * 0.95) - 1]
    with capsys.disabled():
        print(f"\n{kind}: send → received, 50 events: median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
              f"max {took[-1] * 1000:.1f} ms")
    assert median < 0.5
