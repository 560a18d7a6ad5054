"""Layered settings: command-line flags > environment > `wharf.yaml` > defaults.

Each setting is declared once in `SETTINGS`; `load()` resolves them all and remembers where every
value came from, so `wharf config show` can say so. Parsing is pure: it takes the flags, an
environment mapping and the file's path, and returns a frozen `Settings`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wharf.errors import BadInput
from wharf.zk import ZkAddress
from wharf.zk import host_port as _host_port

CONFIG_FILE = "wharf.yaml"


def _http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    shown = mask_url(text.strip()) if parts.password else text.strip()
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown!r} is not an http(s)://host[:port] URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"{shown!r} has an invalid port") from None
    return text.strip().rstrip("/")


def parse_url_list(value: Any) -> tuple[str, ...]:
    """Parse one URL or several, comma-separated (as `MARATHON_URL` allows), into a tuple."""
    items = value if isinstance(value, list) else str(value).split(",")
    urls = tuple(_http_url(str(item)) for item in items if str(item).strip())
    if not urls:
        raise ValueError("no URL given")
    return urls


def parse_url(value: Any) -> str:
    """Parse a single http(s) URL."""
    return _http_url(str(value))


def parse_consul_addr(value: Any) -> str:
    """Parse `CONSUL_HTTP_ADDR`: `host:port`, optionally with an http(s):// scheme, as consul does."""
    text = str(value).strip()
    if "://" in text:
        return _http_url(text)
    return _host_port(text)


def parse_mesos_master(value: Any) -> str:
    """Parse `MESOS_MASTER`: `zk://host:port[,host:port]/path` or `host:port`."""
    text = str(value).strip()
    if text.startswith("zk://"):
        ZkAddress.parse(text)
        return text
    return _host_port(text)


def parse_zk(value: Any) -> str:
    """Parse a ZooKeeper connection string: `host:port[,host:port][/chroot]`."""
    text = str(value).strip().removeprefix("zk://")
    ZkAddress.parse(text, need_path=False)
    return text


def parse_choice(*choices: str) -> Callable[[Any], str]:
    """Return a parser that accepts one of `choices` (case-insensitive)."""

    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_listen_ip(value: Any) -> str:
    """One IPv4 or IPv6 address of this host, as written (not 0.0.0.0 or ::, which others cannot reach)."""
    text = str(value).strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None
    if address.is_unspecified:
        raise ValueError(f"{text!r} is no address to reach: name one address of this host")
    return text


def parse_path(value: Any) -> str:
    """Parse a filesystem path (expanding `~`)."""
    text = str(value).strip()
    if not text:
        raise ValueError("empty path")
    return str(Path(text).expanduser())


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "wharf" / "devcluster")


@dataclass(frozen=True)
class Setting:
    """One setting: its key in `wharf.yaml`, its environment variable, default and parser."""

    name: str
    env: str | None
    default: Any
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    flag: str | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting("marathon_url", "MARATHON_URL", None, parse_url_list,
            "Marathon masters, comma-separated; credentials may be given as user:password@",
            flag="--marathon-url"),
    Setting("mesos_master", "MESOS_MASTER", None, parse_mesos_master,
            "Mesos master: zk://host:port/mesos or host:port", flag="--mesos-master"),
    Setting("chronos_url", "CHRONOS_URL", None, parse_url, "Chronos URL", flag="--chronos-url"),
    Setting("consul_http_addr", "CONSUL_HTTP_ADDR", "127.0.0.1:8500", parse_consul_addr,
            "Consul agent address, as consul's CONSUL_HTTP_ADDR", flag="--consul-addr"),
    Setting("consul_http_token", "CONSUL_HTTP_TOKEN", None, str, "Consul ACL token", secret=True),
    Setting("consul_cacert", "CONSUL_CACERT", None, parse_path, "CA certificate for Consul over TLS"),
    Setting("wharf_zk", "WHARF_ZK", None, parse_zk,
            "ZooKeeper for the framework's own state: host:port[,host:port][/chroot]", flag="--zk"),
    Setting("log_format", "WHARF_LOG_FORMAT", "text", parse_choice("text", "json"), "Log line format",
            flag="--log-format"),
    Setting("log_level", "WHARF_LOG_LEVEL", "info",
            parse_choice("debug", "info", "warning", "error"), "Log level", flag="--log-level"),
    Setting("state_dir", "WHARF_STATE_DIR", None, parse_path,
            "Where the dev cluster keeps its configs, data, logs and pids", flag="--state-dir"),
    # notifications of deploy outcomes (wharf/notify.py); a webhook URL carries its token, so it is
    # a secret (never a flag: argv is visible to every user of the machine) and so is the password
    Setting("notify_webhook", "WHARF_NOTIFY_WEBHOOK", None, parse_url_list,
            "Webhooks told of every deploy outcome (Slack, Mattermost, ...), comma-separated", secret=True),
    Setting("notify_smtp", "WHARF_NOTIFY_SMTP", None, lambda value: _host_port(str(value).strip()),
            "SMTP server (host:port) mailing every deploy outcome", flag="--notify-smtp"),
    Setting("notify_smtp_user", "WHARF_NOTIFY_SMTP_USER", None, lambda value: str(value).strip(),
            "SMTP login", flag="--notify-smtp-user"),
    Setting("notify_smtp_password", "WHARF_NOTIFY_SMTP_PASSWORD", None, str, "SMTP password", secret=True),
    Setting("notify_mail_from", "WHARF_NOTIFY_MAIL_FROM", None, lambda value: str(value).strip(),
            "Sender of the notification mails", flag="--notify-mail-from"),
    Setting("notify_mail_to", "WHARF_NOTIFY_MAIL_TO", None,
            lambda value: tuple(str(a).strip() for a in (value if isinstance(value, list) else str(value).split(","))
                                if str(a).strip()),
            "Recipients of the notification mails, comma-separated", flag="--notify-mail-to"),
    # daemons serve /metrics on loopback unless told: a host whose Prometheus lives elsewhere says where
    Setting("metrics_address", "WHARF_METRICS_ADDRESS", "127.0.0.1", parse_listen_ip,
            "Address the daemons' /metrics listens on (with --metrics-port)"),
    # `wharf build` pushes images there (its own --registry beats it)
    Setting("registry", "WHARF_REGISTRY", None, lambda value: _host_port(str(value).strip()),
            "Docker registry images are pushed to: host:port"),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Value:
    """A resolved setting: its value and where it came from (flag, env, file or default)."""

    value: Any
    source: str


@dataclass(frozen=True)
class Settings:
    """Every setting's resolved value and source."""

    values: Mapping[str, Value]
    config_file: str | None

    def __getitem__(self, name: str) -> Any:
        return self.values[name].value

    def shown(self, name: str) -> Any:
        """The value as it may be printed or logged: secrets and URL passwords masked."""
        value = self.values[name].value
        if value is None:
            return None
        if BY_NAME[name].secret:
            return "********"
        if isinstance(value, tuple):
            return ",".join(mask_url(v) for v in value)
        return mask_url(value) if isinstance(value, str) else value

    def secrets(self) -> list[str]:
        """Every secret string in the settings (tokens, URL passwords, webhooks and their paths, which
        carry Slack's and Mattermost's tokens), for log redaction."""
        found = [str(item) for s in SETTINGS if s.secret and self[s.name]
                 for item in (self[s.name] if isinstance(self[s.name], tuple) else (self[s.name],))]
        # a path long enough to hold a token (a short one, `/h`, would mask every `/h` in the logs)
        found += [urlsplit(url).path for url in self["notify_webhook"] or () if len(urlsplit(url).path) >= 8]
        for s in SETTINGS:
            value = self[s.name]
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, str) and "://" in item and urlsplit(item).password:
                    found.append(str(urlsplit(item).password))
        return found


def mask_url(text: str) -> str:
    """Replace the password in a URL's user-info with `***`."""
    if "://" not in text:
        return text
    parts = urlsplit(text)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def read_config_file(path: Path) -> dict[str, Any]:
    """Read `wharf.yaml`: a mapping of setting names to values; unknown names are bad input."""
    import yaml  # only when there is a file: most commands then start without it

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise BadInput(f"{path}:{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    for key in data:
        if key not in BY_NAME:
            import difflib  # only for the hint

            near = difflib.get_close_matches(str(key), BY_NAME, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise BadInput(f"{path}: unknown setting {key!r}{hint}")
    return data


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: `--config`, else `WHARF_CONFIG`, else `./wharf.yaml` if present."""
    named = explicit or env.get("WHARF_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            source = "--config" if explicit else "WHARF_CONFIG"
            raise BadInput(f"{source}: {path}: no such file")
        return path
    default = Path(CONFIG_FILE)
    return default if default.is_file() else None


def load(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Resolve every setting from flags, then environment, then the config file, then defaults."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    file_values = read_config_file(config_file) if config_file else {}
    values: dict[str, Value] = {}
    for s in SETTINGS:
        if s.name in flags:
            raw, source, label = flags[s.name], "flag", s.flag or s.name
        elif s.env and env.get(s.env, "") != "":
            raw, source, label = env[s.env], "env", s.env
        elif s.name in file_values:
            raw, source, label = file_values[s.name], "file", f"{config_file}: {s.name}"
        else:
            default = _default_state_dir() if s.name == "state_dir" else s.default
            values[s.name] = Value(default, "default")
            continue
        try:
            values[s.name] = Value(s.parse(raw), source)
        except ValueError as exc:  # a secret's value is never repeated back: it may be mistyped, not wrong
            raise BadInput(f"{label}: {'not a valid value' if s.secret else exc}") from None
    return Settings(values, str(config_file) if config_file else None)
