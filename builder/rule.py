"""The write-back rule: where a config repository sets an app's image, and the edit that changes it.

The app `/shop/web` is specified by `apps/shop/web.yaml` (or `.yml`) of the config repository: the
folder path is the app id's path, as `wharf apps` reads it. Its image is set by the spec's ONE
top-level `image:` line (a line starting with `image:` at column 0):

- a literal (`image: 127.0.0.1:5000/shop/web:abc1234`, quoted or not, with a comment or not): that
  one line is rewritten, its quoting and comment kept, every other line untouched;
- a Jinja expression naming one value, `{{ image }}` or `{{ web.image }}` (quoted or not): that key
  is changed in `values/<env>.yaml` (the environment is needed: `--env`), spliced in at the scalar's
  position found with PyYAML's compose node marks, so the file's comments, order and layout stay.
  A value that another spec, job or template reads too is refused: changing it would change their
  image as well;
- anything else is bad input naming the file and line, and nothing changes: an expression with a
  filter or more than one name, no `image:` line or two of them, an empty value, a block scalar,
  an anchor, alias or tag, a value missing from `values/<env>.yaml`, or one that is not a string.

The new value keeps the old one's quoting (plain, `'single'` or `"double"`); a plain value that YAML
would read as something else is written double-quoted. Pure: file texts in, file texts out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from wharf.configrepo import parse_yaml
from wharf.contracts.marathon_model import parse_app_id
from wharf.errors import BadInput, Failure

__all__ = ["ImageSite", "ImageChange", "find_spec", "locate", "plan_change", "readers", "rewrite_literal",
           "rewrite_value", "yaml_scalar"]

#: a top-level `image:` key (column 0), its value on the same line
_TOP_IMAGE = re.compile(r"image[ \t]*:(?=[ \t]|$)")
#: `{{ image }}`, `{{ web.image }}`: one value, no filter, no call, no subscript
_ONE_VALUE = re.compile(r"\{\{-?\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*-?\}\}")
_JINJA = ("{{", "{%", "{#")
_JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_ENV_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: folders whose templates may read a value (the same Jinja context as the app specs)
READER_FOLDERS = ("apps/", "jobs/", "templates/")
SHOWN = "a literal or one value ({{ image }}, {{ web.image }})"


@dataclass(frozen=True)
class ImageSite:
    """Where a spec sets its image: `file`, `line` (1-based), and either the `literal` written there
    or the dotted `key` of the value it reads (`("web", "image")`)."""

    file: str
    line: int
    literal: str | None = None
    key: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        """The key as the template names it: `web.image`."""
        return ".".join(self.key)


@dataclass(frozen=True)
class ImageChange:
    """The edit that sets an app's image: the `site` in its spec, the `file` and `line` holding the
    value, the image it held (`old`), and the new text of each file changed (none when it held the
    new image already)."""

    site: ImageSite
    file: str
    line: int
    old: str
    texts: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """`values/dev.yaml:3 (web.image)` or `apps/web.yaml:2`."""
        return f"{self.file}:{self.line}" + (f" ({self.site.dotted})" if self.site.key else "")


def spec_names(app_id: str) -> tuple[str, str]:
    """The files that may specify `app_id`: `apps/shop/web.yaml` and `apps/shop/web.yml`."""
    path = parse_app_id(app_id).lstrip("/")
    return f"apps/{path}.yaml", f"apps/{path}.yml"


def find_spec(app_id: str, texts: Mapping[str, str]) -> str:
    """The one spec file of `app_id` among `texts` (paths relative to the repository)."""
    found = [name for name in spec_names(app_id) if name in texts]
    if not found:
        raise BadInput(f"{spec_names(app_id)[0]}: no such file: {parse_app_id(app_id)} has no spec in the "
                       "config repository")
    if len(found) > 1:
        raise BadInput(f"{found[1]}: {parse_app_id(app_id)} is specified twice ({found[0]} too)")
    return found[0]


def _closing_quote(text: str) -> int | None:
    """The index of the quote closing the YAML scalar `text` starts with, or None."""
    quote, i = text[0], 1
    while i < len(text):
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _split_value(rest: str) -> tuple[str, str, str] | None:
    """What follows `image:` on its line, as (blanks, the value as written, the rest: blanks and a
    comment); None for an unterminated quote."""
    value = rest.lstrip(" \t")
    lead = rest[:len(rest) - len(value)]
    if value[:1] in ('"', "'"):
        end = _closing_quote(value)
        return None if end is None else (lead, value[:end + 1], value[end + 1:])
    comment = re.search(r"[ \t]+#", value)
    raw = (value[:comment.start()] if comment else value).rstrip(" \t")
    return lead, raw, value[len(raw):]


def _image_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if _TOP_IMAGE.match(line)]


def _parts(spec_file: str, text: str, index: int) -> tuple[str, str, str, str]:
    """The image line cut into (through the colon, blanks, the value as written, the rest)."""
    line = text.splitlines()[index]
    colon = _TOP_IMAGE.match(line)
    assert colon is not None
    split = _split_value(line[colon.end():])
    if split is None:
        raise BadInput(f"{spec_file}:{index + 1}: image: a quote that does not close")
    return (line[:colon.end()], *split)


def _unquote(where: str, raw: str) -> tuple[str, str]:
    """(the value, its quote: `"`, `'` or `""` for plain)."""
    if not raw:
        raise BadInput(f"{where}: image: no value on the line (wharf writes back {SHOWN})")
    if raw[0] not in ('"', "'"):
        return raw, ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise BadInput(f"{where}: image: {raw} is not a valid quoted YAML string") from None
    return str(value), raw[0]


def locate(spec_file: str, text: str) -> ImageSite:
    """Where the spec `text` (of `spec_file`) sets its image: its one top-level `image:` line."""
    lines = _image_lines(text)
    if not lines:
        raise BadInput(f"{spec_file}: no top-level `image:` line: wharf writes back only an image set there, "
                       f"as {SHOWN}")
    if len(lines) > 1:
        raise BadInput(f"{spec_file}:{lines[1] + 1}: a second top-level `image:` line (the first is line "
                       f"{lines[0] + 1}): wharf writes back only one")
    where = f"{spec_file}:{lines[0] + 1}"
    _, _, raw, _ = _parts(spec_file, text, lines[0])
    value, quote = _unquote(where, raw)
    if any(mark in value for mark in _JINJA):
        one = _ONE_VALUE.fullmatch(value.strip())
        if one is None:
            raise BadInput(f"{where}: image: {value.strip()} is an expression wharf cannot write back to "
                           f"(only {SHOWN}, without filters)")
        return ImageSite(spec_file, lines[0] + 1, key=tuple(one[1].split(".")))
    if not quote and value[0] in "|>&*![{":
        raise BadInput(f"{where}: image: {value} is a block scalar, anchor, alias, tag or collection "
                       f"(wharf writes back {SHOWN})")
    return ImageSite(spec_file, lines[0] + 1, literal=value)


def _printable(char: str) -> bool:
    """Whether YAML takes `char` as it is inside a one-line scalar (printable, no line break nor BOM)."""
    code = ord(char)
    return char not in "\x85\u2028\u2029\ufeff" and (
        0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF)


def _double_quoted(value: str) -> str:
    """`value` double-quoted, every character YAML would not take as it is escaped."""
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif _printable(char):
            out.append(char)
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def yaml_scalar(value: str, quote: str = "") -> str:
    """`value` as a YAML scalar in the style `quote` (`""` plain, `'` or `"`): plain only when YAML
    reads it back as this very string, single-quoted only when it needs no escape; else double-quoted."""
    if quote == "'" and all(_printable(c) for c in value):
        return "'" + value.replace("'", "''") + "'"
    if quote == "" and value.strip() == value and all(_printable(c) for c in value) and not any(
            mark in value for mark in ("{", "}", "#")):
        try:
            if yaml.safe_load(f"k: {value}\n") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return _double_quoted(value)


def rewrite_literal(spec_file: str, text: str, line: int, new_image: str) -> str:
    """`text` with the value of its `image:` line `line` (1-based) set to `new_image`."""
    head, lead, raw, rest = _parts(spec_file, text, line - 1)
    _, quote = _unquote(f"{spec_file}:{line}", raw)
    lines = text.splitlines(keepends=True)
    ending = lines[line - 1][len(lines[line - 1].rstrip("\r\n")):]
    lines[line - 1] = head + (lead or " ") + yaml_scalar(new_image, quote) + rest + ending
    return "".join(lines)


def _value_node(values_file: str, text: str, site: ImageSite) -> tuple[yaml.ScalarNode, yaml.Node]:
    """The scalar `site.key` names in the values `text`, and its key's node."""
    parse_yaml(text, values_file)  # syntax errors and keys given twice, with their lines
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    key_node: yaml.Node | None = None
    for depth, part in enumerate(site.key):
        if not isinstance(node, yaml.MappingNode):
            held = ".".join(site.key[:depth]) or "the file"
            line = f":{node.start_mark.line + 1}" if node is not None else ""
            raise BadInput(f"{values_file}{line}: {held} is not a mapping, so it has no {site.dotted} "
                           f"(read by {site.file}:{site.line})")
        found = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
        if not found:
            raise BadInput(f"{values_file}: {site.dotted}: no such value (read by {site.file}:{site.line})")
        key_node, node = found[0]
    assert key_node is not None and node is not None
    where = f"{values_file}:{key_node.start_mark.line + 1}: {site.dotted}"
    if not isinstance(node, yaml.ScalarNode):
        raise BadInput(f"{where}: a {'mapping' if isinstance(node, yaml.MappingNode) else 'list'}, not an image")
    if node.start_mark.index < key_node.end_mark.index or text[node.start_mark.index] in "&!":
        raise BadInput(f"{where}: an alias, anchor or tag: wharf writes back only a plain or quoted string")
    if node.style in ("|", ">") or not node.tag.endswith(":str") or node.value == "":
        raise BadInput(f"{where}: not a one-line string: wharf writes back only a plain or quoted string")
    return node, key_node


def rewrite_value(values_file: str, text: str, site: ImageSite, new_image: str) -> tuple[str, int, str]:
    """The values `text` with `site.key` set to `new_image`, spliced where its scalar is: (the new
    text, the value's line, the value it held)."""
    node, _ = _value_node(values_file, text, site)
    start, end = node.start_mark.index, node.end_mark.index
    new_text = text[:start] + yaml_scalar(new_image, node.style or "") + text[end:]
    check, _ = _value_node(values_file, new_text, site)
    if check.value != new_image:  # the splice must read back as written: never push a file that does not
        raise Failure(f"{values_file}: {site.dotted}: the edit read back as {check.value!r}, not {new_image!r}")
    return new_text, node.start_mark.line + 1, node.value


def readers(texts: Mapping[str, str], key: tuple[str, ...], skip: str) -> list[str]:
    """`file:line` of every template of the repository (specs, jobs, templates; not `skip`) that
    reads the value `key` (`web.image`, `web['image']`) in a `{{ }}` or `{% %}`."""
    rest = "".join(rf"\s*(?:\.\s*{re.escape(p)}|\[\s*['\"]{re.escape(p)}['\"]\s*\])" for p in key[1:])
    name = re.compile(rf"(?<![\w.'\"]){re.escape(key[0])}{rest}(?!\w)")
    found = []
    for file in sorted(texts):
        if file == skip or not file.startswith(READER_FOLDERS):
            continue
        text = texts[file]
        for block in _JINJA_BLOCK.finditer(text):
            hit = name.search(block[0])
            if hit:
                found.append(f"{file}:{text.count(chr(10), 0, block.start() + hit.start()) + 1}")
    return found


def plan_change(app_id: str, texts: Mapping[str, str], env: str | None, new_image: str) -> ImageChange:
    """The change that makes `app_id` run `new_image`, by the rule above, from the repository's file
    `texts` (relative path -> text: the app's spec, `values/<env>.yaml`, and every spec, job and
    template, which may read the same value). Raises BadInput naming the file and line."""
    spec_file = find_spec(app_id, texts)
    site = locate(spec_file, texts[spec_file])
    if site.literal is not None:
        new = {} if site.literal == new_image else {spec_file: rewrite_literal(spec_file, texts[spec_file],
                                                                               site.line, new_image)}
        return ImageChange(site, spec_file, site.line, site.literal, new)
    where = f"{spec_file}:{site.line}"
    if env is None:
        raise BadInput(f"{where}: image reads the value {site.dotted}: give --env to name the values/<env>.yaml "
                       "to change")
    if not _ENV_NAME.fullmatch(env):
        raise BadInput(f"--env: {env!r} is not a valid environment name")
    values_file = f"values/{env}.yaml"
    if values_file not in texts:
        raise BadInput(f"{values_file}: no such file: --env {env} names no environment ({where} reads "
                       f"{site.dotted})")
    others = readers(texts, site.key, spec_file)
    if others:
        raise BadInput(f"{where}: image reads {site.dotted}, which {', '.join(others)} read(s) too: changing it "
                       f"would change their image as well; give {parse_app_id(app_id)} a value of its own")
    new_text, line, old = rewrite_value(values_file, texts[values_file], site, new_image)
    return ImageChange(site, values_file, line, old, {} if old == new_image else {values_file: new_text})
