"""Which characters a name, virtual host or path may hold where a generated config writes it.

marathon-lb's label parsers (`marathon_lb`) refuse a group, vhost or path that breaks these rules, and
the renderer's safety checks (`consul_templates.safe`) hold catalog values to the same ones, so a
label the spec expansion accepts is one the renderer writes.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import NamedTuple

__all__ = ["ALNUM", "HOST_LABEL", "NAME", "NAME_WORD", "PATH", "VHOST", "Word", "is_name", "is_path", "is_vhost"]

ALNUM = string.ascii_letters + string.digits


class Word(NamedTuple):
    """A value of one position: the ASCII characters it may start with and hold, and its length."""

    first: str
    rest: str
    shortest: int
    longest: int

    def pattern(self) -> re.Pattern[str]:
        """The same rule as a regular expression, for one value."""
        body = f"[{re.escape(self.rest)}]"
        if self.first == self.rest:
            return re.compile(f"{body}{{{self.shortest},{self.longest}}}")
        return re.compile(f"[{re.escape(self.first)}]{body}{{{self.shortest - 1},{self.longest - 1}}}")


NAME_WORD = Word(ALNUM, ALNUM + "._-", 1, 128)
NAME = NAME_WORD.pattern()
HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
VHOST = re.compile(rf"(\*\.)?{HOST_LABEL.pattern}(\.{HOST_LABEL.pattern})*")
PATH = re.compile(r"/[A-Za-z0-9._~%/-]{0,255}")


@lru_cache(maxsize=65536)
def is_name(value: str) -> bool:
    """A service, node or group name: letters, digits, `.`, `_`, `-`; starts with a letter or digit."""
    return bool(NAME.fullmatch(value))


@lru_cache(maxsize=65536)
def is_vhost(value: str) -> bool:
    """One virtual host: a hostname, optionally with a leading `*.` wildcard."""
    return len(value) <= 253 and bool(VHOST.fullmatch(value))


@lru_cache(maxsize=65536)
def is_path(value: str) -> bool:
    """A URL path prefix: starts with `/`, then unreserved characters, `%` and `/`."""
    return bool(PATH.fullmatch(value))
