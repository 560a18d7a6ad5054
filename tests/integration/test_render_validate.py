"""What reaches a config file: hostile catalogs never break `haproxy -c` / `nginx -t` or add a
directive; a refused render keeps the last good file and retries without the service that broke it."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consul_templates import passes, render, safe, writer
from consul_templates.snapshot import ServiceInstance, Snapshot
from tests.conftest import wharf
from tests.integration.render_support import instance

pytestmark = pytest.mark.integration

NASTY = ["\n", "\r", "#", '"', "'", "{", "}", ";", " ", "\t", "\\", "$", "\u00e9", "\u2028", "\x00"]
nasty_text = st.builds(lambda a, bad, b: a + bad + b, st.text(max_size=12), st.sampled_from(NASTY),
                       st.text(max_size=12)) | st.builds(lambda s, n: s * n, st.sampled_from(["a", "b.", "\u00e9"]),
                                                          st.integers(200, 3000))  # huge values
plain_text = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
maybe = st.one_of(plain_text, nasty_text)
ipv4 = st.tuples(*[st.integers(1, 254)] * 3).map(lambda t: "127.{}.{}.{}".format(*t))
label_names = st.sampled_from(["VHOST", "PATH", "MODE", "BALANCE", "STICKY", "REDIRECT_TO_HTTPS", "BACKEND_WEIGHT",
                               "ENABLED", "GROUP", "PORT", "BACKEND_HEAD", "FRONTEND_HEAD", "RETRY_ON"])
label_values = st.one_of(maybe, st.sampled_from(["true", "http", "tcp", "/api", "a.example.com", "*.b.org",
                                                 "leastconn", "5", "10080", "none", "503,conn-failure"]))


@st.composite
def hostile_instance(draw: st.DrawFn) -> ServiceInstance:
    name = draw(maybe)
    meta = {"marathon_app_id": "/" + draw(st.one_of(plain_text, nasty_text)),
            "service_port": str(draw(st.integers(10000, 10050))), "port_index": "0"}
    meta.update({f"HAPROXY_0_{k}": v for k, v in draw(st.dictionaries(label_names, label_values, max_size=5)).items()})
    meta.update(draw(st.dictionaries(maybe, maybe, max_size=2)))
    return ServiceInstance(
        id=draw(maybe), service=name, node=draw(maybe),
        address=draw(st.one_of(ipv4, nasty_text)), port=draw(st.one_of(st.integers(1, 65535), st.integers(-5, 0))),
        tags=tuple(draw(st.lists(maybe, max_size=2))), meta=meta,
        status=draw(st.sampled_from(["passing", "passing", "critical"])),
    )


HAPROXY_KEYWORDS = {"global", "stats", "server-state-file", "defaults", "mode", "timeout", "option", "retries",
                    "load-server-state-from-file", "listen", "bind", "frontend", "acl", "use_backend",
                    "default_backend", "backend", "balance", "cookie", "dynamic-cookie-key", "http-request",
                    "server", "server-template", "retry-on", "default-server"}
NGINX_DIRECTIVES = {"worker_processes", "pid", "error_log", "events", "worker_connections", "http", "access_log",
                    "default_type", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                    "uwsgi_temp_path", "scgi_temp_path", "proxy_http_version", "proxy_set_header", "upstream",
                    "server", "listen", "server_name", "location", "proxy_pass", "return"}
WORD = re.compile(r"[A-Za-z0-9._:/*=,()!\[\]{}|^~%@+-]+|\"[^\"]*\"|'[^']*'")


def haproxy_lines_are_the_templates(text: str) -> None:
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] == "#" and line.startswith("# Written by wharf"):
            continue
        assert words[0] in HAPROXY_KEYWORDS, line
        assert "#" not in line and "\\" not in line, line
        if words[0] == "server":
            assert len(words) == 3 and re.fullmatch(r"slot\d+", words[1]), line
            assert re.fullmatch(r"[0-9a-fA-F.:]+:\d+|[A-Za-z0-9.-]+:\d+", words[2]), line


def nginx_directives_are_the_templates(text: str) -> None:
    body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert "#" not in body
    depth = 0
    for statement in re.split(r"[;{}]", re.sub(r'"[^"]*"', '""', body)):
        words = statement.split()
        if words:
            assert words[0] in NGINX_DIRECTIVES, statement
    for ch in re.sub(r'"[^"]*"', '""', body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


@pytest.fixture(scope="module")
def nginx_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("nginx-prefix")
    for sub in ("conf", "logs", "tmp"):
        (prefix / sub).mkdir()
    return prefix


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(st.lists(hostile_instance(), min_size=1, max_size=4),
       st.lists(st.builds(lambda p: instance("/ok/web", 10100, p, VHOST="ok.example.com"), st.integers(31000, 31010)),
                max_size=2))
def test_hostile_catalogs_never_break_the_config_or_add_a_directive(
        tmp_path: Path, nginx_prefix: Path, hostile: list[ServiceInstance], good: list[ServiceInstance]) -> None:
    clean, _ = safe.clean(Snapshot.of([*hostile, *good]))
    sets = render.RenderSettings(http_port=18080, admin_socket=str(tmp_path / "a.sock"),
                                 state_file=str(tmp_path / "state"), nginx_port=18081)
    h = render.render(render.load_template("haproxy"), clean, sets).text
    n = render.render(render.load_template("nginx"), clean, sets).text
    writer.check(h, tmp_path, "haproxy.cfg", writer.haproxy_validator())
    writer.check(n, nginx_prefix / "conf", "nginx.conf", writer.nginx_validator(str(nginx_prefix)))
    haproxy_lines_are_the_templates(h)
    nginx_directives_are_the_templates(n)
    if good:
        assert "use_backend ok_web_10100 if host_ok_web_10100" in h and "server_name ok.example.com;" in n


def test_write_skips_equal_bytes_keeps_mode_and_a_backup(tmp_path: Path) -> None:
    dest = tmp_path / "haproxy.cfg"
    valid = render.render(render.load_template("haproxy"), Snapshot(), render.RenderSettings(http_port=18080)).text
    assert writer.write(dest, valid, writer.haproxy_validator()).changed
    dest.chmod(0o640)
    assert not writer.write(dest, valid, writer.haproxy_validator()).changed
    second = valid.replace("timeout connect 5s", "timeout connect 6s")
    result = writer.write(dest, second, writer.haproxy_validator())
    assert result.changed and result.backup == tmp_path / "haproxy.cfg.bak"
    assert (tmp_path / "haproxy.cfg.bak").read_text() == valid and dest.read_text() == second
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    with pytest.raises(writer.ValidationFailed, match="haproxy -c") as refused:
        writer.write(dest, second + "backend x\n    nonsense here\n", writer.haproxy_validator())
    assert refused.value.line is not None
    assert dest.read_text() == second and sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg",
                                                                                         "haproxy.cfg.bak"]


def test_a_service_that_breaks_validation_is_left_out_and_the_rest_written(tmp_path: Path) -> None:
    dest = tmp_path / "haproxy.cfg"
    template = render.load_template("haproxy")
    target = passes.Target(template, dest, writer.haproxy_validator())
    r = passes.Renderer([target], render.RenderSettings(http_port=18080, admin_socket=str(tmp_path / "a.sock")),
                        reload=False)
    good = instance("/good", 10200, 31000)
    assert r.apply(Snapshot.of([good]))[0].action == "written"
    # a well-formed hostname that does not resolve: safe, but haproxy -c refuses it
    broken = ServiceInstance("b1", "broken", "n1", "no-such-host.invalid", 80)
    other = instance("/other", 10201, 31001)
    [out] = r.apply(Snapshot.of([good, broken, other]))
    assert out.action == "written" and out.excluded == ("broken",)
    text = dest.read_text()
    assert "backend other_10201" in text and "no-such-host" not in text
    # still broken: still left out, nothing rewritten; fixed: back in
    assert r.apply(Snapshot.of([good, broken, other]))[0].changed is False
    fixed = ServiceInstance("b1", "broken", "n1", "127.0.0.1", 80)
    assert r.apply(Snapshot.of([good, fixed, other]))[0].excluded == ()
    assert "backend broken" in dest.read_text()


def test_a_user_template_failing_at_run_time_never_replaces_the_good_file(tmp_path: Path) -> None:
    mine = tmp_path / "mine-haproxy.cfg.j2"  # the built-in one, with its own copy of the parts beside it
    mine.write_text(render.BUILTIN["haproxy"].read_text())
    parts = (render.TEMPLATE_DIR / "haproxy.parts.j2").read_text()
    assert "    balance {{ route.balance }}" in parts
    (tmp_path / "haproxy.parts.j2").write_text(parts.replace(
        "    balance {{ route.balance }}",
        "    balance {{ route.balance }}\n"
        "    # owner {{ kv['lb/owner'] }} {{ route.servers[0].id if route.servers else route.missing }}"))
    dest = tmp_path / "haproxy.cfg"
    template = render.load_template(str(mine))
    assert template.kind == "haproxy"
    target = passes.Target(template, dest, writer.haproxy_validator())
    r = passes.Renderer([target], render.RenderSettings(http_port=18080, admin_socket=str(tmp_path / "a.sock")),
                        reload=False)
    a, b = instance("/a", 10300, 31000), instance("/b", 10301, 31001)
    kv = {"lb/owner": "ops"}
    assert r.apply(Snapshot.of([a, b], kv))[0].action == "written"
    # every instance of /a down: the template fails on it alone, so /a is left out and /b kept
    down = a._replace(status="critical")
    [out] = r.apply(Snapshot.of([down, b], kv))
    assert out.action == "written" and out.excluded == ("a",)
    good = dest.read_text()
    assert "backend b_10301" in good and "backend a_10300" not in good
    # the key it needs is gone: it fails whatever is left out, so the good file stays
    [out] = r.apply(Snapshot.of([b]))
    assert out.action == "failed" and f"{mine}:" in (out.error or "") and "lb/owner" in (out.error or "")
    assert dest.read_text() == good


def test_a_broken_template_is_refused_at_start_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.cfg.j2"
    bad.write_text("global\n    maxconn 10\n{% if services %}\n    {{ services | length }\n{% endif %}\n")
    dest = tmp_path / "out.cfg"
    dest.write_text("good\n")
    for command in ("once", "check", "run"):
        result = wharf("render", command, "--template", str(bad), "--dest", str(dest),
                       env={"CONSUL_HTTP_ADDR": "127.0.0.1:1"})
        assert result.returncode == 2, result.stderr
        assert f"{bad}:4:" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert dest.read_text() == "good\n"


def test_template_and_dest_come_in_pairs(tmp_path: Path) -> None:
    result = wharf("render", "once", "--template", "haproxy", "--template", "nginx", "--dest", str(tmp_path / "x"))
    assert result.returncode == 2 and "pairs" in result.stderr


def test_a_bad_retry_on_is_refused_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "haproxy.cfg"
    result = wharf("render", "once", "--template", "haproxy", "--dest", str(dest),
                   "--retry-on", "conn-failure,sometimes", env={"CONSUL_HTTP_ADDR": "127.0.0.1:1"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "Error: --retry-on: 'conn-failure,sometimes' is not none or HAProxy retry-on")
    assert len(result.stderr.strip().splitlines()) == 1 and not dest.exists()


def test_a_change_is_checked_by_haproxy_of_its_own_blocks_and_a_refused_one_left_out(tmp_path: Path) -> None:
    """After a good file, a new route is checked by `haproxy -c` of what it changes (its blocks, the
    shared http frontend, a stand-in for every other backend), not of the whole file; a route
    HAProxy refuses there is left out and the file keeps the rest."""
    checked: list[str] = []
    haproxy_c = writer.haproxy_validator()

    def validate(path: Path) -> None:
        checked.append(path.read_text())
        haproxy_c(path)
        if "backend bad_10499" in checked[-1]:
            raise writer.ValidationFailed("haproxy -c: [ALERT] refused")
    dest = tmp_path / "haproxy.cfg"
    target = passes.Target(render.load_template("haproxy"), dest, validate)
    r = passes.Renderer([target], render.RenderSettings(http_port=18080, admin_socket=str(tmp_path / "a.sock")),
                        reload=False)
    apps = [instance(f"/app{n}", 10400 + n, 31000 + n, VHOST=f"a{n}.example.com") for n in range(6)]
    assert r.apply(Snapshot.of(apps))[0].action == "written"
    assert checked[-1].count("    server slot1 ") == 6  # the first file is checked whole
    new = instance("/new", 10498, 32000, VHOST="new.example.com")
    assert r.apply(Snapshot.of([*apps, new]))[0].action == "written"
    assert checked[-1].count("    server slot1 ") == 1 and "backend new_10498" in checked[-1]
    assert "\nbackend app0_10400\n    mode http\n" in checked[-1]  # a stand-in, for the rule that names it
    assert dest.read_text().count("    server slot1 ") == 7
    bad = instance("/bad", 10499, 32001, VHOST="bad.example.com")
    [out] = r.apply(Snapshot.of([*apps, new, bad]))
    assert out.action == "none" and out.excluded == ("bad",)  # the file it would be is the one there
    assert "backend bad_10499" not in dest.read_text() and dest.read_text().count("    server slot1 ") == 7
