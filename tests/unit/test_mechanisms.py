"""The ground floor's small shared mechanisms: wait, atomic write, the HAProxy socket client, the
ZooKeeper address, the topological sort."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.mesos.zk import ZkUrl
from wharf import haproxy, settings, toposort
from wharf.atomic import write_atomic
from wharf.errors import BadInput, Failure, TimedOut, Unreachable
from wharf.wait import wait_until
from wharf.zk import ZkAddress

pytestmark = pytest.mark.unit


# --- wait_until ----------------------------------------------------------------------------------

class FakeTime:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now, self.slept = 100.0, list[float]()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_wait_until_returns_the_first_truthy_answer() -> None:
    answers, fake = iter([None, 0, "", "ready"]), FakeTime()
    assert wait_until(lambda: next(answers), 10, 0.5, "it", clock=fake.clock, sleep=fake.sleep) == "ready"
    assert fake.slept == [0.5, 0.5, 0.5]


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    fake, calls = FakeTime(), []
    with pytest.raises(TimedOut) as caught:
        wait_until(lambda: calls.append(fake.now), 2, 0.5, "the leader", clock=fake.clock, sleep=fake.sleep)
    assert str(caught.value) == "timed out after 2s waiting for the leader"
    assert isinstance(caught.value, Failure) and caught.value.exit_code == 1
    assert (caught.value.what, caught.value.timeout) == ("the leader", 2)
    assert calls == [100.0, 100.5, 101.0, 101.5, 102.0], "a last look once the deadline has passed"


def test_wait_until_names_what_is_still_missing_when_it_gives_up() -> None:
    fake, missing = FakeTime(), ["a", "b"]

    def step() -> bool:
        missing[1:] = []
        return False

    with pytest.raises(TimedOut, match="waiting for a$"):
        wait_until(step, 1, 1, lambda: ", ".join(missing), clock=fake.clock, sleep=fake.sleep)


def test_wait_until_looks_once_even_with_no_time_and_lets_errors_through() -> None:
    assert wait_until(lambda: 7, 0, sleep=lambda _: pytest.fail("no sleep needed")) == 7
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, 5)


def test_wait_until_stops_early_on_an_event() -> None:
    stopping = threading.Event()
    stopping.set()
    assert wait_until(stopping.is_set, 30, 10, "stop", sleep=stopping.wait)


# --- write_atomic --------------------------------------------------------------------------------

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _others(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != name)


def test_write_atomic_writes_text_or_bytes_and_makes_the_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "conf"
    write_atomic(target, "one\n")
    assert target.read_text() == "one\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask(), "a new file: what open() gives it"
    write_atomic(str(target), b"\x00two")
    assert target.read_bytes() == b"\x00two" and _others(target.parent, "conf") == []


def test_write_atomic_keeps_the_files_permissions_unless_told(tmp_path: Path) -> None:
    target = tmp_path / "haproxy.cfg"
    target.write_text("old")
    target.chmod(0o640)
    write_atomic(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "new"
    write_atomic(target, "#!/bin/sh\n", 0o755)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


@pytest.mark.parametrize("failing", ["write", "fsync", "check"])
def test_a_failed_write_leaves_the_file_whole_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               failing: str) -> None:
    target = tmp_path / "nginx.conf"
    target.write_text("the old config\n")

    def refuse(*_: object) -> None:
        raise OSError(28, "No space left on device")

    real_fdopen, check = os.fdopen, None

    def half_then_full(fd: int, mode: str) -> object:  # the disk fills up halfway through the write
        out = real_fdopen(fd, mode)
        real_write = out.write

        def write(data: bytes) -> int:
            real_write(data[: len(data) // 2])
            out.flush()
            raise OSError(28, "No space left on device")

        out.write = write  # type: ignore[method-assign, assignment]
        return out

    if failing == "write":
        monkeypatch.setattr(os, "fdopen", half_then_full)
    elif failing == "fsync":
        monkeypatch.setattr(os, "fsync", refuse)
    else:
        check = refuse
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "x" * 100_000, check=check)
    assert target.read_text() == "the old config\n"
    assert _others(tmp_path, "nginx.conf") == []


def test_write_atomic_checks_the_temp_file_and_keeps_a_backup(tmp_path: Path) -> None:
    target, backup = tmp_path / "conf", tmp_path / "conf.bak"
    seen: list[str] = []
    write_atomic(target, "first", check=lambda p: seen.append(p.read_text()), backup=backup)
    assert not backup.exists(), "nothing to keep the first time"
    write_atomic(target, "second", check=lambda p: seen.append(p.read_text()), backup=backup)
    assert seen == ["first", "second"]
    assert (target.read_text(), backup.read_text()) == ("second", "first")
    assert _others(tmp_path, "conf") == ["conf.bak"]


# --- the HAProxy socket client -------------------------------------------------------------------

@pytest.fixture
def echo_socket(tmp_path: Path) -> Iterator[Path]:
    """A unix socket that answers each command, after the client closes its side, with a long reply."""
    path = tmp_path / "admin.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                asked = b""
                while chunk := conn.recv(1024):
                    asked += chunk
                conn.sendall(b"you said " + asked + b"x" * 200_000)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    server.close()


def test_send_returns_the_whole_answer(echo_socket: Path) -> None:
    answer = haproxy.send(echo_socket, "show proc", timeout=5)
    assert answer.startswith("you said show proc\n") and len(answer) == len("you said show proc\n") + 200_000
    assert haproxy.ask(f"unix:{echo_socket}", "show info").startswith("you said show info\n")


def test_send_reaches_a_tcp_stats_socket_too() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"Name: HAProxy\n")

        threading.Thread(target=serve, daemon=True).start()
        assert haproxy.send(f"127.0.0.1:{port}", "show info") == "Name: HAProxy\n"


def test_ask_names_haproxy_and_what_to_check(tmp_path: Path) -> None:
    missing = tmp_path / "gone.sock"
    with pytest.raises(OSError):
        haproxy.send(missing, "show stat")
    with pytest.raises(Unreachable) as caught:
        haproxy.ask(str(missing), "show stat")
    assert str(caught.value) == (f"cannot reach HAProxy at {missing} (no such socket): is HAProxy running with "
                                 "its stats page or admin socket there? Check --haproxy")


# --- ZooKeeper addresses -------------------------------------------------------------------------

def test_zk_addresses_with_and_without_the_scheme_path_and_credentials() -> None:
    found = ZkAddress.parse(" zk://a:2181,b:2182/mesos/ ")
    assert (found.hosts, found.path, found.auth) == ("a:2181,b:2182", "/mesos", None)
    assert found.connection == "a:2181,b:2182/mesos"
    assert ZkAddress.parse("a:2181", need_path=False) == ZkAddress("a:2181")
    assert ZkAddress.parse("zk://u:p@a:2181,b:2181/mesos").auth == "u:p"
    assert ZkAddress.parse("zk://u:p@a:2181/mesos").hosts == "a:2181"


@pytest.mark.parametrize(("text", "need_path", "error"), [
    ("zk://a:2181", True, "has no ZooKeeper path"),
    ("zk://a:2181/", True, "has no ZooKeeper path"),
    ("a:notaport/x", False, "'a:notaport' is not host:port"),
    ("a:2181,b/x", False, "'b' is not host:port"),
    ("a:70000", False, "is not host:port"),
])
def test_bad_zk_addresses_say_what_is_wrong(text: str, need_path: bool, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        ZkAddress.parse(text, need_path)


def test_every_zk_reader_is_the_one_parser() -> None:
    assert settings.parse_zk("zk://a:2181,b:2181/wharf") == "a:2181,b:2181/wharf"
    assert settings.parse_mesos_master("zk://u:p@a:2181/mesos") == "zk://u:p@a:2181/mesos"
    assert ZkUrl.parse("zk://a:2181/mesos") == ZkUrl("a:2181", "/mesos")
    with pytest.raises(ValueError, match="credentials"):
        ZkUrl.parse("zk://u:p@a:2181/mesos")


# --- the topological sort ------------------------------------------------------------------------

def test_levels_and_order() -> None:
    deps = {"web": ["api"], "api": ["db", "outside"], "db": [], "b": [], "x": [], "c": ["b"]}
    assert toposort.levels(deps) == [["b", "db", "x"], ["api", "c"], ["web"]]
    assert toposort.order(deps) == ["b", "c", "db", "api", "web", "x"], "the first ready name next"
    assert toposort.levels({}) == [] and toposort.order({}) == []


def test_cycles_are_found_and_named() -> None:
    deps = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["a"], "e": []}
    assert toposort.find_cycle(deps) == ["a", "c", "b", "a"]
    assert toposort.find_cycle(deps, start="b") == ["b", "a", "c", "b"]
    assert toposort.find_cycle(deps, start="d") is None, "d waits on the cycle but is not on it"
    assert toposort.find_cycle({"a": ["a"]}) == ["a", "a"]
    for sort in (toposort.levels, toposort.order):
        with pytest.raises(toposort.CycleError) as caught:
            sort(deps)
        assert str(caught.value) == "dependency cycle: a -> c -> b -> a"
        assert caught.value.stuck == ["a", "b", "c", "d"]
        assert isinstance(caught.value, BadInput) and isinstance(caught.value, ValueError)


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.lists(st.sampled_from("abcdefghz"), max_size=3), max_size=8))
def test_both_sorts_put_every_node_after_its_dependencies(deps: dict[str, list[str]]) -> None:
    if toposort.find_cycle(deps):
        with pytest.raises(toposort.CycleError):
            toposort.order(deps)
        return
    flat = [n for wave in toposort.levels(deps) for n in wave]
    for ordered in (flat, toposort.order(deps)):
        assert sorted(ordered) == sorted(deps)
        assert all(ordered.index(d) < ordered.index(n) for n, ds in deps.items() for d in ds if d in deps)
