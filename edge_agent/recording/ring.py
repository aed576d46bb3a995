"""The pre-roll: the last seconds of a camera as encoded packets, in memory.

Packets are kept as whole GOPs (a keyframe and what follows it up to the next one), so a
clip can start at any kept GOP. The ring holds the GOPs that reach into the last
``pre_roll_s`` plus the one before, so the oldest kept keyframe lies at least
``pre_roll_s`` back: a clip starts ``pre_roll_s`` before its trigger, within one
keyframe interval. A quiet scene thus writes nothing to disk; memory is bounded by
``pre_roll_s`` of encoded video (a few hundred kB at 720p encoded here) and by
``max_bytes``: an IP camera's own stream, kept as it comes, can be megabytes a second,
and its keyframes as far apart as the camera likes. Past ``max_bytes`` the oldest GOPs
go, whole; the newest one always stays (a clip needs its keyframe).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from edge_agent.types import VideoPacket

Packet = VideoPacket  # the name it had here


class PreRoll:
    """A ring of GOPs covering at least the last ``pre_roll_s``."""

    def __init__(self, pre_roll_s: float, max_bytes: int | None = None) -> None:
        self.pre_roll_ms = round(1000 * pre_roll_s)
        self.max_bytes = max_bytes  # None: bounded by time alone
        self._gops: deque[list[Packet]] = deque()
        self.bytes = 0

    def add(self, packet: Packet) -> None:
        if packet.keyframe or not self._gops:
            if not packet.keyframe:
                return  # nothing before the first keyframe can be decoded
            self._gops.append([])
        self._gops[-1].append(packet)
        self.bytes += len(packet.data)
        self._trim(packet.pts_ms)

    def _trim(self, now_ms: int) -> None:
        # Drop the oldest GOP while the next one still starts at least pre_roll_s back.
        while len(self._gops) > 1 and self._gops[1][0].pts_ms <= now_ms - self.pre_roll_ms:
            dropped = self._gops.popleft()
            self.bytes -= sum(len(p.data) for p in dropped)
        # Then, past the byte bound, the oldest GOPs whatever their time.
        while self.max_bytes is not None and self.bytes > self.max_bytes and len(self._gops) > 1:
            dropped = self._gops.popleft()
            self.bytes -= sum(len(p.data) for p in dropped)

    def clear(self) -> None:
        self._gops.clear()
        self.bytes = 0

    def since(self, start_ms: int) -> Iterator[Packet]:
        """The kept packets from the last keyframe at or before ``start_ms`` (or the
        oldest kept one) onwards."""
        gops = list(self._gops)
        first = 0
        for index, gop in enumerate(gops):
            if gop[0].pts_ms <= start_ms:
                first = index
        for gop in gops[first:]:
            yield from gop

    @property
    def first_ms(self) -> int | None:
        return self._gops[0][0].pts_ms if self._gops else None

    @property
    def gops(self) -> int:
        return len(self._gops)
