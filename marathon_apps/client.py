"""Marathon as `wharf apps` calls it: the one client of `wharf.marathon`, under this room's names."""

from __future__ import annotations

from wharf.marathon import MarathonClient as Marathon
from wharf.marathon import MarathonError, refusal

__all__ = ["Marathon", "MarathonError", "refusal"]
