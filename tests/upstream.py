"""Where the upstream contract artifacts are: `../shared/upstream/` beside the repository.

Without them (a clone on its own) only the checks that read them are left out: a test made only of
such checks is skipped, saying why (`upstream`); a behaviour test that also checks its traffic
against an artifact runs without that check, and a warning says which one was left out (`optional`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

UPSTREAM = Path(__file__).resolve().parents[1].parent / "shared" / "upstream"


class UpstreamMissing(UserWarning):
    """An upstream artifact is absent, so the checks against it were not made."""


def upstream(*parts: str) -> Path:
    """The path of an upstream artifact; the calling test is skipped, saying so, if it is absent."""
    path = UPSTREAM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"upstream artifact not found: {path}")
    return path


def optional(*parts: str) -> Path | None:
    """The path of an upstream artifact, or None (with an `UpstreamMissing` warning) if it is absent."""
    path = UPSTREAM.joinpath(*parts)
    if not path.exists():
        warnings.warn(UpstreamMissing(f"upstream artifact not found: {path}; the checks against it are left out"),
                      stacklevel=2)
        return None
    return path
