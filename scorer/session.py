"""What the scorer keeps per owned session: its ``SessionInfo`` (consent), the observations and face crops read
incrementally from ``obs:{sid}`` and ``crops:{sid}``, and the per-frame feature cache.

Observations and crops are read after a cursor each time the session has windows to score (and in full when the
session is taken over), and kept by frame number in bounded caches (``obs_keep``, ``crops_keep``: the oldest frame
numbers go first), so a task clip stays whole here even after Redis trims its streams (crops keep ~5 s there).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time

import numpy as np
import numpy.typing as npt

from common.bus import Bus
from common.errors import DecodeError
from common.logs import session_logger
from common.messages import Obs, SessionInfo
from common.session_store import SessionStore
from common.streams import CROPS, OBS
from scorer.frame_cache import FrameFeatures
from scorer.frame_rows import FrameRows

log = logging.getLogger(__name__)

INFO_REFRESH_S = 5.0
READ_CHUNK = 256


@dataclasses.dataclass
class ReadCounts:
    obs: int = 0
    crops: int = 0


class SessionState:
    """One owned session's caches. Not shared between tasks: the worker owns it."""

    def __init__(self, sid: str, obs_keep: int, crops_keep: int, features_keep: int) -> None:
        self.sid = sid
        self.log = session_logger(log, sid)
        self.info: SessionInfo | None = None
        self.info_problem = ""
        self.info_read_at = 0.0
        self.obs: dict[int, Obs] = {}
        self.crops: collections.OrderedDict[int, npt.NDArray[np.uint8]] = collections.OrderedDict()
        self.obs_keep = obs_keep
        self.crops_keep = crops_keep
        self.features = FrameFeatures(features_keep)
        self.rows = FrameRows(obs_keep)
        self.obs_cursor = "0-0"
        self.crops_cursor = "0-0"
        self.ended_at: float | None = None
        self.synced_at = 0.0
        self.last_window_at = time.monotonic()
        self.warned: set[str] = set()

    def warn_once(self, key: str, text: str, *args: object) -> None:
        if key not in self.warned:
            self.warned.add(key)
            self.log.warning(text, *args)

    async def refresh_info(self, store: SessionStore, force: bool = False) -> None:
        """Re-read ``session:{sid}`` at most every few seconds (consent may change while a session runs)."""
        now = time.monotonic()
        if not force and now - self.info_read_at < INFO_REFRESH_S:
            return
        self.info_read_at = now
        try:
            info = await store.get(self.sid)
        except DecodeError as exc:
            self.info, self.info_problem = None, str(exc)
            self.warn_once("info", "session hash unreadable (%s): scores are withheld as no_consent", exc)
            return
        self.info, self.info_problem = info, "" if info is not None else "no session hash"

    async def sync(self, bus: Bus) -> ReadCounts:
        """Read the observations and crops published since the last call."""
        counts = ReadCounts()
        while True:
            got = await bus.range(OBS, self.sid, start=f"({self.obs_cursor}", count=READ_CHUNK)
            for d in got:
                if d.message.sid == self.sid:
                    self.obs[d.message.seq] = d.message
            if got:
                self.obs_cursor = got[-1].id
                counts.obs += len(got)
            if len(got) < READ_CHUNK:
                break
        while True:
            crops = await bus.range(CROPS, self.sid, start=f"({self.crops_cursor}", count=READ_CHUNK)
            for c in crops:
                if c.message.sid == self.sid:
                    self.crops[c.message.seq] = c.message.image
                    self.crops.move_to_end(c.message.seq)
            if crops:
                self.crops_cursor = crops[-1].id
                counts.crops += len(crops)
            if len(crops) < READ_CHUNK:
                break
        self._bound()
        self.synced_at = time.monotonic()
        return counts

    def _bound(self) -> None:
        if len(self.obs) > self.obs_keep:
            for seq in sorted(self.obs)[: len(self.obs) - self.obs_keep]:
                del self.obs[seq]
        while len(self.crops) > self.crops_keep:
            del self.crops[min(self.crops)]

    def span(self, first: int, last: int) -> list[Obs]:
        """Observations with frame numbers in ``[first, last]``, oldest first."""
        obs = self.obs
        if last - first < len(obs):  # a task clip: look its frame numbers up rather than sort every observation
            return [obs[s] for s in range(first, last + 1) if s in obs]
        return [obs[s] for s in sorted(s for s in obs if first <= s <= last)]

    def forget_before(self, seq: int) -> None:
        """Crops, frame features and per-frame rows before ``seq`` are no longer needed (observations stay,
        bounded)."""
        for s in [s for s in self.crops if s < seq]:
            del self.crops[s]
        self.features.forget_before(seq)
        self.rows.forget_before(seq)

    def clear(self) -> None:
        self.obs.clear()
        self.crops.clear()
        self.features.clear()
        self.rows.clear()
