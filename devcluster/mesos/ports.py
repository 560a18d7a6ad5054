"""Port ranges for the stand-in's agents: spans that are free on this machine when it starts.

Several stand-ins may run on one machine at once (a dev cluster and a test run, or several test
runs). Each agent gets a block of ``BLOCK`` ports from a grid starting at ``PORTS_FROM``. A
stand-in claims a block by binding its first port, without ``SO_REUSEADDR``, for as long as it
runs: the kernel then refuses that bind to any other stand-in, and the agent offers the rest of
the block. A block is taken only if every one of its ports is free right now. Blocks outside the
kernel's ephemeral range (where port 0 binds and outgoing connections land) are tried first, in
random order so that stand-ins starting together rarely contend.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

from devcluster.process import port_is_free

Range = tuple[int, int]
PORTS_FROM, PORTS_TO = 31000, 65535
BLOCK = 100  # ports per agent: the first marks the claim, the other 99 are offered
EPHEMERAL_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL: Range = (32768, 60999)


def ephemeral_range(path: Path = EPHEMERAL_FILE) -> Range:
    """The kernel's ephemeral port range (Linux's default when it cannot be read)."""
    try:
        lo, hi = path.read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL


def candidate_blocks(ephemeral: Range, rng: random.Random, first: int = PORTS_FROM,
                     last: int = PORTS_TO, block: int = BLOCK) -> list[int]:
    """Start ports of the grid's blocks: those clear of ``ephemeral`` first, each group shuffled."""
    starts = list(range(first, last - block + 2, block))
    clear = [s for s in starts if s + block - 1 < ephemeral[0] or s > ephemeral[1]]
    rest = [s for s in starts if s not in clear]
    rng.shuffle(clear)
    rng.shuffle(rest)
    return clear + rest


def free_everywhere(port: int) -> bool:
    """True if ``port`` is free on every address: tasks bind 0.0.0.0 or their agent's own address."""
    return port_is_free(port, "0.0.0.0")  # noqa: S104 - a bind probe, closed at once; it never listens


class PortClaim:
    """The blocks one stand-in holds; :meth:`release` (or process exit) gives them back."""

    def __init__(self, is_free: Callable[[int], bool] = free_everywhere) -> None:
        self._is_free = is_free
        self._markers: list[socket.socket] = []

    def claim(self, count: int, candidates: Sequence[int] | None = None,
              block: int = BLOCK) -> list[Range]:
        """``count`` port ranges, one per agent, each free right now and held by no other stand-in.

        Raises ``RuntimeError`` (after giving back what it took) when not enough blocks are free.
        """
        if candidates is None:
            candidates = candidate_blocks(ephemeral_range(), random.Random())
        ranges: list[Range] = []
        for start in candidates:
            if len(ranges) == count:
                break
            marker = self._take(start)
            if marker is None:
                continue
            if all(self._is_free(p) for p in range(start + 1, start + block)):
                self._markers.append(marker)
                ranges.append((start + 1, start + block - 1))
            else:
                marker.close()
        if len(ranges) < count:
            self.release()
            raise RuntimeError(f"only {len(ranges)} of {count} agent port ranges of {block} ports are free "
                               f"between {PORTS_FROM} and {PORTS_TO}")
        return ranges

    def release(self) -> None:
        for marker in self._markers:
            marker.close()
        self._markers = []

    @staticmethod
    def _take(port: int) -> socket.socket | None:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: no other socket can bind this port now
        except OSError:
            s.close()
            return None
        return s
