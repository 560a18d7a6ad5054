"""The KV layout and transaction of `wharf apps sync-kv`, and reading apps back. Pure."""

from __future__ import annotations

import base64
import json

import pytest

from marathon_apps.kv import apps_of, documents
from marathon_apps.spec import App
from wharf.configrepo import Spec, SpecErrors
from wharf.errors import BadInput
from wharf.kvprefix import COMMIT_KEY, Entry, entries_of, prefix_of, txn_ops

pytestmark = pytest.mark.unit


def app(app_id: str, **fields: object) -> App:
    definition = {"id": app_id, "cmd": "x", "labels": {"wharf.owner": "wharf"}, **fields}
    return App(app_id, definition, Spec(f"apps{app_id}.yaml", app_id[1:], definition))


def test_documents_are_one_key_per_app_with_stable_bytes() -> None:
    docs = documents([app("/shop/web", instances=2), app("/api")], "cfg", commit="abc")
    assert sorted(docs) == ["cfg/.wharf/commit", "cfg/api", "cfg/shop/web"]
    assert json.loads(docs["cfg/shop/web"])["instances"] == 2
    assert docs == documents([app("/api"), app("/shop/web", instances=2)], "cfg", commit="abc")


def test_only_changed_keys_are_written_each_guarded_by_its_index() -> None:
    docs = documents([app("/a"), app("/b", instances=3), app("/new")], "p")
    current = {"p/a": Entry("p/a", docs["p/a"], 7), "p/b": Entry("p/b", b"old", 8), "p/gone": Entry("p/gone", b"x", 9),
               "p/.wharf/commit": Entry("p/.wharf/commit", b"c1", 10)}
    ops = txn_ops(docs, current, keep_commit=True)
    assert [(o["KV"]["Verb"], o["KV"]["Key"], o["KV"]["Index"]) for o in ops] == [
        ("cas", "p/b", 8), ("cas", "p/new", 0), ("delete-cas", "p/gone", 9)]
    assert base64.b64decode(ops[0]["KV"]["Value"]) == docs["p/b"]
    assert txn_ops(docs, {k: Entry(k, v, 1) for k, v in docs.items()}) == []


def test_apps_read_back_from_kv_and_bad_values_name_the_key() -> None:
    docs = documents([app("/api"), app("/web", dependencies=["/api"])], "p", commit="abc")
    entries = entries_of([{"Key": k, "Value": v, "ModifyIndex": 3} for k, v in docs.items()] + [{"Key": "p/dir/"}])
    apps, commit = apps_of(entries, "p", "wharf")
    assert [a.id for a in apps] == ["/api", "/web"] and commit == "abc" and apps[1].dependencies == ("/api",)

    bad = dict(entries)
    bad["p/web"] = Entry("p/web", json.dumps({"id": "/web", "cmd": "x", "instances": "2"}).encode(), 4)
    bad["p/Bad"] = Entry("p/Bad", b"{}", 4)
    with pytest.raises(SpecErrors) as info:
        apps_of(bad, "p", "wharf")
    text = str(info.value)
    assert "p/web: /instances: must be an integer" in text and "p/Bad: the key is not a valid Marathon app id" in text
    lone = {"p/web": entries["p/web"]}
    with pytest.raises(SpecErrors, match="p/web: dependencies: depends on /api, which is not an app"):
        apps_of(lone, "p", "wharf")


def test_prefix_must_name_something() -> None:
    assert prefix_of("/wharf/apps/") == "wharf/apps"
    with pytest.raises(BadInput, match="--prefix: must not be empty"):
        prefix_of(" / ")
    assert COMMIT_KEY.startswith(".")  # no app id has a segment starting with a dot
