"""Compatibility shims for third-party libraries wharf uses."""

import collections
import collections.abc

# marathon 0.13.0 serialises nested models with `collections.Iterable`, removed in Python 3.10;
# this one alias lets the unmodified client run. Import this module before using the client.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]
