"""The KV prefix mechanism both rooms share: `sync`'s transaction against a fake Consul, and the base
watcher's index handling (each new index acted on once, an index already handled does nothing, an
index that goes back is read afresh, a failed act is tried again), its notices made at start."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from wharf import settings
from wharf.configrepo import SpecError, SpecErrors
from wharf.errors import BadInput, Failure
from wharf.kvprefix import (
    COMMIT_KEY,
    MAX_TXN_OPS,
    Entry,
    PrefixWatcher,
    layout,
    refusal_events,
    split,
    sync,
    sync_lines,
)
from wharf.sinks import DaemonNotices

pytestmark = pytest.mark.unit


class FakeKv:
    """py-consul's `kv` and `txn` over a dict: answers are (index, items) in the order `answers`
    gives, else the current state at index `index`."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.index = 1
        self.answers: list[tuple[int, dict[str, bytes]]] = []
        self.txns: list[list[dict]] = []
        self.kv, self.txn = self, self

    def get(self, key: str, recurse: bool = False, index: int | None = None, wait: str | None = None) -> Any:
        found, data = self.answers.pop(0) if self.answers else (self.index, self.data)
        return found, [{"Key": k, "Value": v, "ModifyIndex": found} for k, v in data.items() if k.startswith(key)]

    def put(self, ops: list[dict]) -> dict:
        self.txns.append(ops)
        for op in ops:
            kv = op["KV"]
            if kv["Verb"] == "cas":
                self.data[kv["Key"]] = base64.b64decode(kv["Value"])
            else:
                del self.data[kv["Key"]]
        self.index += 1
        return {"Results": []}


def test_sync_writes_only_what_changed_and_keeps_the_commit_when_none_is_given() -> None:
    consul = FakeKv()
    assert sync(consul, layout("p", {"a": {"x": 1}, "b": {"x": 2}}, "c1"), "p") == [
        f"p/{COMMIT_KEY}", "p/a", "p/b"]
    assert sync(consul, layout("p", {"a": {"x": 1}, "b": {"x": 2}}, "c1"), "p") == []
    assert sync(consul, layout("p", {"a": {"x": 3}}), "p") == ["p/a", "p/b"]
    assert consul.data == {f"p/{COMMIT_KEY}": b"c1", "p/a": b'{\n "x": 3\n}\n'} and len(consul.txns) == 2
    with pytest.raises(BadInput, match=rf"--prefix p: {MAX_TXN_OPS + 2} keys change, .* sync fewer jobs"):
        sync(consul, layout("p", {f"j{i}": {} for i in range(MAX_TXN_OPS + 1)}), "p", "jobs")  # and p/a deleted
    assert len(consul.txns) == 2  # refused: nothing written


def test_split_and_refusal_events_name_each_bad_key_once() -> None:
    held, commit = split({"p/a": Entry("p/a", b"1", 1), f"p/{COMMIT_KEY}": Entry("", b" c9 \n", 1)}, "p")
    assert held == [("p/a", "a", b"1")] and commit == "c9"
    events = refusal_events("sync", [SpecError("p/a", "not JSON"), SpecError("p/b", "bad", field="cpus"),
                                     SpecError("p/a", "again")])
    assert [(e.kind, e.app, e.result) for e in events] == [("sync", "p/a", "failed"), ("sync", "p/b", "failed")]
    assert events[0].message == "refused, nothing sent: p/a: not JSON; p/a: again"


class Recorder(PrefixWatcher):
    """Records each (index, keys) it is asked to act on; `fail` makes the next act raise."""

    def __init__(self, consul: FakeKv) -> None:
        super().__init__("test-watch-kv", consul, "p", wait=1)
        self.acted: list[tuple[int, list[str]]] = []
        self.fail = False
        self.watch.rate_limit = self.watch.jitter = 0.0

    def act(self, index: int, entries: dict[str, Entry]) -> None:
        self.acted.append((index, sorted(entries)))
        if self.fail:
            self.fail = False
            raise Failure("Marathon away")
        if "p/bad" in entries:
            self.refused(index, SpecErrors([SpecError("p/bad", "not JSON")]), "deploy", "bad thing in KV")


def test_each_new_index_is_acted_on_once_and_an_index_going_back_is_read_afresh() -> None:
    consul = FakeKv()
    watcher = Recorder(consul)
    consul.answers = [(5, {"p/a": b"1"}), (5, {"p/a": b"1"}), (7, {"p/a": b"2"}), (7, {"p/a": b"2"}),
                      (3, {"p/a": b"2"}), (3, {"p/a": b"2"})]
    for _ in range(6):
        watcher.run_cycle()
    assert watcher.acted == [(5, ["p/a"]), (7, ["p/a"]), (3, ["p/a"])]
    assert watcher.handled == 3 and watcher.seen == 3


def test_a_failed_act_leaves_its_index_to_be_tried_again() -> None:
    consul = FakeKv()
    watcher = Recorder(consul)
    watcher.fail = True
    consul.answers = [(4, {}), (4, {}), (4, {})]
    with pytest.raises(Failure):
        watcher.run_cycle()
    assert watcher.handled is None
    watcher.run_cycle()
    watcher.run_cycle()
    assert [index for index, _ in watcher.acted] == [4, 4] and watcher.handled == 4


def test_a_refused_index_is_logged_naming_the_key_and_told(caplog: pytest.LogCaptureFixture) -> None:
    consul = FakeKv()
    watcher = Recorder(consul)
    sent: list[Any] = []
    watcher.notices.send = sent.extend  # type: ignore[method-assign]
    consul.answers = [(2, {"p/bad": b"{"})]
    watcher.run_cycle()
    assert [(r.getMessage(), r.levelname) for r in caplog.records if "KV" in r.getMessage()] == [
        ("bad thing in KV", "ERROR")]
    assert [(e.app, e.result) for e in sent] == [("p/bad", "failed")] and watcher.handled == 2


def test_bad_notify_settings_stop_the_watcher_before_its_first_cycle() -> None:
    consul = FakeKv()
    watcher = Recorder(consul)
    with pytest.raises(BadInput, match="WHARF_NOTIFY_MAIL_FROM: needed"):
        watcher.run(settings.load({}, {"WHARF_NOTIFY_SMTP": "127.0.0.1:25", "WHARF_NOTIFY_MAIL_TO": "o@x.org"}, None))
    assert watcher.acted == []
    assert DaemonNotices().notifier is None and DaemonNotices(settings.load({}, {}, None)).notifier is None
    made = DaemonNotices(settings.load({}, {"WHARF_NOTIFY_WEBHOOK": "http://127.0.0.1:9/h"}, None))
    assert made.notifier is not None
    made.close(0)


def test_sync_lines_name_each_key_then_sum_up_or_say_nothing_changed() -> None:
    assert sync_lines(["p/a", "p/.wharf/commit"], "p", 1, "jobs") == [
        "wrote p/a", "wrote p/.wharf/commit", "2 keys changed under p/ (1 jobs)"]
    assert sync_lines([], "p", 3, "apps") == ["nothing to write: 3 apps under p/ are up to date"]
