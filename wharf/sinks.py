"""Where notifications go: a webhook (Slack's and Mattermost's incoming webhooks take its body) and
mail through SMTP, configured by the `WHARF_NOTIFY_*` settings; and `Notices`, what a command uses.

    notices = Notices(settings)          # before the command changes anything: bad settings exit 2
    ...                                  # the deploy, rollback, sync or build
    notices.tell(events)                 # sent in the background, flushed for at most 5 s

A daemon keeps one `DaemonNotices(settings)` for its life: `send(events)` as they happen, `close()` at its end.

Each sink logs only its `address`: a webhook's scheme://host[:port], never its path (Slack's and
Mattermost's carry a token there); the SMTP password never.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from ipaddress import ip_address
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from wharf.errors import BadInput, HttpError, Unreachable, WharfError, describe, network_reason
from wharf.http import HttpClient, short
from wharf.notify import DeliveryDeferred, DeliveryFailed, Event, Notifier, Sink
from wharf.retry import Retry
from wharf.settings import Settings

T = TypeVar("T")
#: one HTTP try per delivery attempt: the notifier's retry does the rest (and logs nothing secret)
_ONE_TRY = Retry(max_tries=1, retry_on=(OSError,))
#: how long a command waits at its end for its notifications to go out
FLUSH_SECONDS = 5.0


def webhook_body(event: Event) -> dict[str, Any]:
    """The JSON a webhook receives. Slack's and Mattermost's incoming webhooks take a JSON POST
    (`Content-Type: application/json`) whose `text` is the message shown (Slack's mrkdwn, Mattermost's
    Markdown), and answer 200 `ok`; they read their own keys (`text`, `username`, `channel`,
    `icon_url`, `attachments`, Mattermost's `props`) and pass over the others, so the structured event
    rides along under `wharf` for any other receiver (a CI hook, a log collector)."""
    return {"text": event.line(), "wharf": event.to_json()}


class WebhookSink:
    """POSTs `webhook_body(event)` to `url` (http or https, `user:password@` sent as basic auth)."""

    check = "is the webhook receiver up and reachable from here? Check WHARF_NOTIFY_WEBHOOK"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput("WHARF_NOTIFY_WEBHOOK: a webhook is an http(s):// URL")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        where = f"{host}:{parts.port}" if parts.port else host
        self.address = f"{parts.scheme}://{where}"
        self.name = f"webhook:{where}"
        self._path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self._secrets = [s for s in (self._path, parts.path, parts.password) if s and s != "/"]
        base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self._client = HttpClient(base, system="the webhook", timeout=timeout, retry=_ONE_TRY, shown=self.address)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text

    def deliver(self, event: Event) -> None:
        """POST the event; 408, 429 and 5xx answers and network failures are tried again."""
        try:
            self._client.request("POST", self._path, webhook_body(event))
        except HttpError as exc:
            again = exc.status in (408, 429) or exc.status >= 500
            kind = DeliveryDeferred if again else DeliveryFailed
            raise kind(self._scrub(f"{self.address} answered {exc.status}: {short(exc.body)}")) from None
        except Unreachable as exc:
            raise DeliveryDeferred(f"cannot reach {self.address}: {exc.why}") from None
        except WharfError as exc:
            raise DeliveryDeferred(self._scrub(exc.message)) from None


def _loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass
class MailSink:
    """Mails each event from `sender` to `recipients` through the SMTP server at `host:port`.

    Port 465 speaks TLS from the start; elsewhere STARTTLS is used when the server offers it
    (`starttls`: True to require it, False never to use it). With `user`, the server's login is
    used; the password goes only over TLS, or to a server on this machine."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool | None = None
    timeout: float = 10.0
    name: str = field(init=False)
    address: str = field(init=False)
    check = ("is the SMTP server up and accepting mail from here? Check WHARF_NOTIFY_SMTP, "
             "WHARF_NOTIFY_SMTP_USER and WHARF_NOTIFY_SMTP_PASSWORD, WHARF_NOTIFY_MAIL_FROM and _TO")

    def __post_init__(self) -> None:
        self.name, self.address = f"mail:{self.host}:{self.port}", f"smtp://{self.host}:{self.port}"

    def message(self, event: Event) -> EmailMessage:
        """The mail: the event's line as its subject, the line and the event's JSON as its body."""
        mail = EmailMessage()
        mail["Subject"] = f"[wharf] {event.line()}"
        mail["From"], mail["To"] = self.sender, ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=False)
        mail.set_content(f"{event.line()}\n\n{json.dumps(event.to_json(), indent=2)}\n")
        return mail

    def deliver(self, event: Event) -> None:
        """Send the mail; the server's 4xx answers and network failures are tried again."""
        try:
            self._send(self.message(event))
        except smtplib.SMTPResponseException as exc:
            kind = DeliveryDeferred if 400 <= exc.smtp_code < 500 else DeliveryFailed
            said = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise kind(f"{self.address} answered {exc.smtp_code}: {short(said)}") from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryFailed(f"{self.address} refused every recipient") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed(f"{self.address}: {exc}") from None
        except OSError as exc:  # smtplib's own errors too
            why = network_reason(exc, connecting=True) or describe(exc)
            raise DeliveryDeferred(f"cannot reach {self.address}: {why}") from None

    def _send(self, mail: EmailMessage) -> None:
        implicit = self.port == 465
        smtp = (smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
                if implicit else smtplib.SMTP(self.host, self.port, timeout=self.timeout))
        with smtp:
            smtp.ehlo()
            tls = implicit
            if not implicit and self.starttls is not False and (self.starttls or smtp.has_extn("starttls")):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
                tls = True
            if self.user:
                if not tls and not _loopback(self.host):
                    raise DeliveryFailed(f"{self.address} offers no STARTTLS: the password is not sent unencrypted")
                smtp.login(self.user, self.password or "")
            smtp.send_message(mail, self.sender, list(self.recipients))



def _mail_sink(settings: Settings) -> MailSink | None:
    if not settings["notify_smtp"]:
        given = [n for n in ("notify_smtp_user", "notify_smtp_password", "notify_mail_from", "notify_mail_to")
                 if settings[n]]
        if given:
            raise BadInput(f"WHARF_{given[0].upper()}: set, but WHARF_NOTIFY_SMTP (the mail server's host:port) is not")
        return None
    for name, what in (("notify_mail_from", "the sender"), ("notify_mail_to", "the recipients")):
        value = settings[name]
        if not value:
            raise BadInput(f"WHARF_{name.upper()}: needed with WHARF_NOTIFY_SMTP ({what} of the mail)")
        bad = [a for a in ((value,) if isinstance(value, str) else value) if "@" not in a.strip("@")]
        if bad:
            raise BadInput(f"WHARF_{name.upper()}: {bad[0]!r} is not a mail address")
    if settings["notify_smtp_password"] and not settings["notify_smtp_user"]:
        raise BadInput("WHARF_NOTIFY_SMTP_PASSWORD: set without WHARF_NOTIFY_SMTP_USER")
    host, _, port = settings["notify_smtp"].rpartition(":")
    return MailSink(host.strip("[]"), int(port), settings["notify_mail_from"], settings["notify_mail_to"],
                    settings["notify_smtp_user"], settings["notify_smtp_password"])


def notifier_from(settings: Settings, **options: Any) -> Notifier | None:
    """The notifier the settings configure (`WHARF_NOTIFY_*`), or None when they name no sink;
    `options` go to `Notifier`. Mail settings that do not add up are `BadInput` (exit 2)."""
    sinks: list[Sink] = [WebhookSink(url) for url in settings["notify_webhook"] or ()]
    mail = _mail_sink(settings)
    if mail is not None:
        sinks.append(mail)
    return Notifier(sinks, **options) if sinks else None


class Notices:
    """A command's notifications: the sinks its settings name (made first, so that bad settings stop
    the command before it changes anything), told of its outcomes at its end."""

    def __init__(self, settings: Settings) -> None:
        self.notifier = notifier_from(settings)

    def tell(self, events: Iterable[Event], flush: float = FLUSH_SECONDS) -> None:
        """Send `events` and wait up to `flush` seconds for them to go out (never longer, never an
        error, and not for a sink that fails: its events are dropped, said in one log line)."""
        if self.notifier is None:
            return
        for event in events:
            self.notifier.send(event)
        self.notifier.close(flush, wait_failing=False)

    def around(self, kind: str, app: str, versions: tuple[str | None, str | None], run: Callable[[], T]) -> T:
        """`run()`, then tell its outcome: `ok`, or `failed` with its error's one line (raised again)."""
        try:
            result = run()
        except WharfError as exc:
            self.tell([Event(kind, app, "failed", versions=versions, message=exc.message)])
            raise
        self.tell([Event(kind, app, "ok", versions=versions)])
        return result


class DaemonNotices:
    """A daemon's notifications: one notifier for its whole life, made from the settings when it
    starts (bad settings are BadInput, before it changes anything; none given: no sinks), each event
    sent as it happens, and what is still queued flushed when it stops."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.notifier = notifier_from(settings) if settings is not None else None

    def send(self, events: Iterable[Event]) -> None:
        """Queue each event for every sink; returns at once."""
        if self.notifier is not None:
            for event in events:
                self.notifier.send(event)

    def close(self, flush: float = FLUSH_SECONDS) -> None:
        """Wait up to `flush` seconds for what is queued (not for a failing sink), then stop."""
        if self.notifier is not None:
            self.notifier.close(flush, wait_failing=False)
