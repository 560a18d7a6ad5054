"""The write-back rule of `wharf build` (builder/rule.py): file texts in, file texts out."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from builder.image import image_name, push_failure
from builder.rule import ImageSite, locate, plan_change, readers, yaml_scalar
from wharf.errors import BadInput

pytestmark = pytest.mark.unit

NEW = "127.0.0.1:5000/shop/web:abc1234"
SPEC_LITERAL = """\
# /shop/web: the front end
image: wharf/busybox:latest   # set by wharf build
cmd: exec httpd -f -p $HOST:$PORT0
instances: {{ web.instances }}
container:
  docker:
    image: not/this:one
"""
VALUES = """\
# values of dev
image: wharf/busybox:latest   # shared base
web:
  # the front end
  instances: 2
  image: "127.0.0.1:5000/shop/web:0000000"  # written by wharf build
  mem: 32
"""


def spec(image_line: str, extra: str = "") -> str:
    return f"# spec\n{image_line}\ncmd: run\n{extra}"


def test_a_literal_line_is_rewritten_and_nothing_else() -> None:
    change = plan_change("/shop/web", {"apps/shop/web.yaml": SPEC_LITERAL}, None, NEW)
    assert (change.file, change.line, change.old) == ("apps/shop/web.yaml", 2, "wharf/busybox:latest")
    new = change.texts["apps/shop/web.yaml"]
    assert new == SPEC_LITERAL.replace("image: wharf/busybox:latest   #", f"image: {NEW}   #")
    assert change.where == "apps/shop/web.yaml:2"


@pytest.mark.parametrize(("line", "written"), [
    ('image: "wharf/busybox:latest"', f'image: "{NEW}"'),
    ("image: 'wharf/busybox:latest'  # quoted", f"image: '{NEW}'  # quoted"),
    ("image:    wharf/busybox", f"image:    {NEW}"),
    ("image: wharf/busybox#notacomment", f"image: {NEW}"),
])
def test_the_literal_keeps_its_quoting_and_comment(line: str, written: str) -> None:
    change = plan_change("/web", {"apps/web.yml": spec(line)}, None, NEW)
    assert change.texts["apps/web.yml"] == spec(written)


def test_crlf_line_endings_stay() -> None:
    text = "cmd: run\r\nimage: a/b:1\r\nmem: 3\r\n"
    assert plan_change("/web", {"apps/web.yaml": text}, None, NEW).texts["apps/web.yaml"] == (
        f"cmd: run\r\nimage: {NEW}\r\nmem: 3\r\n")


def test_the_same_image_changes_nothing() -> None:
    change = plan_change("/web", {"apps/web.yaml": spec(f"image: {NEW}")}, None, NEW)
    assert change.texts == {} and change.old == NEW


def test_a_top_level_value_is_spliced_into_the_values_file() -> None:
    texts = {"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": VALUES}
    change = plan_change("/web", texts, "dev", NEW)
    assert (change.file, change.line, change.old, change.site.key) == ("values/dev.yaml", 2, "wharf/busybox:latest",
                                                                       ("image",))
    assert change.texts == {"values/dev.yaml": VALUES.replace("image: wharf/busybox:latest", f"image: {NEW}")}
    assert change.where == "values/dev.yaml:2 (image)"


@pytest.mark.parametrize("line", ['image: "{{ web.image }}"', "image: {{web.image}}  # from values",
                                  "image: '{{- web.image -}}'"])
def test_a_nested_value_keeps_quotes_comments_and_layout(line: str) -> None:
    texts = {"apps/shop/web.yaml": spec(line), "values/dev.yaml": VALUES}
    change = plan_change("/shop/web", texts, "dev", NEW)
    assert change.line == 6 and change.old == "127.0.0.1:5000/shop/web:0000000"
    assert change.texts == {"values/dev.yaml": VALUES.replace("0000000", "abc1234")}
    assert yaml.safe_load(change.texts["values/dev.yaml"])["web"]["image"] == NEW


def test_flow_mappings_and_single_quotes_in_values() -> None:
    values = "web: {instances: 2, image: 'a/b:1'}  # flow\n"
    change = plan_change("/web", {"apps/web.yaml": spec("image: {{ web.image }}"), "values/prod.yaml": values},
                         "prod", "r:1/it's:2")
    assert change.texts["values/prod.yaml"] == "web: {instances: 2, image: 'r:1/it''s:2'}  # flow\n"


def test_a_plain_value_that_yaml_would_misread_is_double_quoted() -> None:
    assert yaml_scalar("a/b:1") == "a/b:1"
    assert yaml_scalar("yes") == '"yes"' and yaml_scalar("1.5") == '"1.5"' and yaml_scalar("a #b") == '"a #b"'
    assert yaml_scalar("x", "'") == "'x'" and yaml_scalar("x", '"') == '"x"'


@given(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
       st.sampled_from(["", "'", '"']))
def test_every_scalar_reads_back_as_written(value: str, quote: str) -> None:
    values = f"# top\nweb:\n  image: {yaml_scalar('old', quote)}  # keep\n  mem: 3\n"
    change = plan_change("/web", {"apps/web.yaml": spec("image: {{ web.image }}"), "values/e.yaml": values}, "e",
                         value)
    text = change.texts.get("values/e.yaml", values)
    assert yaml.safe_load(text) == {"web": {"image": value, "mem": 3}}
    assert text.startswith("# top\nweb:\n  image: ") and text.endswith("  # keep\n  mem: 3\n")


@pytest.mark.parametrize(("texts", "env", "message"), [
    ({"apps/web.yaml": "cmd: run\n"}, None, "apps/web.yaml: no top-level `image:` line"),
    ({"apps/web.yaml": "container:\n  docker:\n    image: a/b\n"}, None, "apps/web.yaml: no top-level"),
    ({"apps/web.yaml": "image: a\nimage: b\n"}, None, "apps/web.yaml:2: a second top-level `image:` line"),
    ({"apps/web.yaml": spec("image: {{ image | lower }}")}, "dev", "apps/web.yaml:2: image: {{ image | lower }} "
                                                                   "is an expression"),
    ({"apps/web.yaml": spec("image: {{ reg }}/web:{{ tag }}")}, "dev", "apps/web.yaml:2: image: {{ reg }}/web"),
    ({"apps/web.yaml": spec("image: {{ web['image'] }}")}, "dev", "apps/web.yaml:2:"),
    ({"apps/web.yaml": spec("image:")}, None, "apps/web.yaml:2: image: no value on the line"),
    ({"apps/web.yaml": spec("image: >-")}, None, "apps/web.yaml:2: image: >- is a block scalar"),
    ({"apps/web.yaml": spec('image: "a/b')}, None, "apps/web.yaml:2: image: a quote that does not close"),
    ({"apps/web.yaml": spec("image: {{ image }}")}, None, "apps/web.yaml:2: image reads the value image: give "
                                                          "--env"),
    ({"apps/web.yaml": spec("image: {{ image }}")}, "prod", "values/prod.yaml: no such file"),
    ({"apps/web.yaml": spec("image: {{ web.image }}"), "values/dev.yaml": "web: {mem: 3}\n"}, "dev",
     "values/dev.yaml: web.image: no such value (read by apps/web.yaml:2)"),
    ({"apps/web.yaml": spec("image: {{ web.image }}"), "values/dev.yaml": "web: [a]\n"}, "dev",
     "values/dev.yaml:1: web is not a mapping"),
    ({"apps/web.yaml": spec("image: {{ web }}"), "values/dev.yaml": "web: {image: a}\n"}, "dev",
     "values/dev.yaml:1: web: a mapping, not an image"),
    ({"apps/web.yaml": spec("image: {{ web.image }}"), "values/dev.yaml": "base: &b a/b\nweb:\n  image: *b\n"},
     "dev", "values/dev.yaml:3: web.image: an alias"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": "image: &b a/b\n"}, "dev",
     "values/dev.yaml:1: image: an alias, anchor or tag"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": "image: |\n  a/b\n"}, "dev",
     "values/dev.yaml:1: image: not a one-line string"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": "image: 12\n"}, "dev",
     "values/dev.yaml:1: image: not a one-line string"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": "image: a\nimage: b\n"}, "dev",
     "values/dev.yaml:2: image: given twice"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": "image: [a\n"}, "dev",
     "values/dev.yaml:2: not valid YAML"),
    ({"apps/api.yaml": spec("image: a")}, None, "apps/web.yaml: no such file: /web has no spec"),
    ({"apps/web.yaml": spec("image: a"), "apps/web.yml": spec("image: a")}, None, "apps/web.yml: /web is specified "
                                                                                  "twice"),
    ({"apps/web.yaml": spec("image: {{ image }}"), "values/../x.yaml": "image: a\n"}, "../x", "--env: '../x'"),
])
def test_refusals_name_the_file_and_line(texts: dict[str, str], env: str | None, message: str) -> None:
    with pytest.raises(BadInput) as refused:
        plan_change("/web", texts, env, NEW)
    assert refused.value.message.startswith(message), refused.value.message
    assert refused.value.exit_code == 2


def test_a_value_another_app_reads_too_is_refused() -> None:
    texts = {"apps/web.yaml": spec("image: {{ image }}"), "values/dev.yaml": VALUES,
             "apps/api.yaml": "cmd: x\nimage: {{ image }}\n",
             "jobs/report.yaml": "labels:\n  base: \"{{ web.image }}\"\n",
             "templates/common.j2": "{% if image %}x{% endif %}\n"}
    with pytest.raises(BadInput) as refused:
        plan_change("/web", texts, "dev", NEW)
    assert refused.value.message == (
        "apps/web.yaml:2: image reads image, which apps/api.yaml:2, templates/common.j2:1 read(s) too: changing it "
        "would change their image as well; give /web a value of its own")
    assert readers(texts, ("web", "image"), "apps/web.yaml") == ["jobs/report.yaml:2"]
    assert readers({"apps/a.yaml": "x: {{ web['image'] }} {{ web.images }} {{ x.web.image }}"}, ("web", "image"),
                   "") == ["apps/a.yaml:1"]
    assert readers({"apps/a.yaml": "x: {{ web.images }} {{ x.web.image }} image: {{ 'web.image' }}"},
                   ("web", "image"), "") == []


def test_locate_tells_a_literal_from_a_value() -> None:
    assert locate("apps/w.yaml", "image: a/b:1  # c\n") == ImageSite("apps/w.yaml", 1, literal="a/b:1")
    assert locate("apps/w.yaml", "x: 1\nimage: '{{ a.b.c }}'\n") == ImageSite("apps/w.yaml", 2, key=("a", "b", "c"))
    assert locate("apps/w.yaml", "  image: nested\nimage: top\n").line == 2


def test_the_image_is_named_after_the_registry_the_app_and_the_short_commit() -> None:
    commit = "abc1234def5678abc1234def5678abc1234def56"
    assert image_name("127.0.0.1:5000", "/shop/web", commit) == "127.0.0.1:5000/shop/web:abc1234"
    assert image_name("127.0.0.1:5000", "web", commit[:9]) == "127.0.0.1:5000/web:abc1234"
    for registry, app, sha, word in [("127.0.0.1", "/web", commit, "--registry"), ("r:1", "/Web", commit, "must"),
                                     ("r:1", "/web", "xyz", "--commit")]:
        with pytest.raises(BadInput, match=word):
            image_name(registry, app, sha)


def test_a_registry_not_reached_says_what_to_check() -> None:
    down = push_failure("127.0.0.1:1", 'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: '
                                       "connection refused")
    assert down.message == ('push failed: cannot reach the registry at 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": '
                            "dial tcp 127.0.0.1:1: connect: connection refused; is it running there? Check "
                            "WHARF_REGISTRY or --registry")
    assert push_failure("r:1", "denied:\nrequested access\n").message == "push failed: denied: requested access"
