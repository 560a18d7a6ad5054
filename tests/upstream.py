"""Where the upstream contract artifacts are: `../shared/upstream/` beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

UPSTREAM = Path(__file__).resolve().parents[1].parent / "shared" / "upstream"


def upstream(*parts: str) -> Path:
    """The path of an upstream artifact; the calling test is skipped, saying so, if it is absent."""
    path = UPSTREAM.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"upstream artifact not found: {path}")
    return path
