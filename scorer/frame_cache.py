"""The per-frame RGB feature cache of one session: the ``frame`` graph's output per frame number, computed once and
reused by every window that contains the frame (design.md §5: a window then costs the temporal and trajectory parts
only, about 12x less work for the paper-size model).

- Keyed by frame number within one session and one loaded model version; a new version (hot reload) or another
  task's model starts an empty cache, so a feature never mixes weights.
- Bounded to ``keep`` frames: the oldest frame numbers go first. The scorer also forgets frames before the active
  task's start once no window can need them (:meth:`forget_before`), and the whole cache with the session.
- Frames being computed are shared: a second window needing the same frame waits for the first computation.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]


class FrameFeatures:
    """Frame features of one session for one model version."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.uid = ""
        self._done: collections.OrderedDict[int, Vector] = collections.OrderedDict()
        self._inflight: dict[int, asyncio.Future[Vector]] = {}

    def use(self, uid: str) -> None:
        """Switch to the model version ``uid``; features of another version are dropped."""
        if uid != self.uid:
            self.clear()
            self.uid = uid

    def clear(self) -> None:
        self._done.clear()
        for fut in self._inflight.values():
            if not fut.done():
                fut.cancel()
        self._inflight.clear()

    def __len__(self) -> int:
        return len(self._done)

    def __contains__(self, seq: object) -> bool:
        return seq in self._done

    def get(self, seq: int) -> Vector | None:
        return self._done.get(seq)

    def missing(self, seqs: list[int]) -> list[int]:
        """Of ``seqs``, those neither cached nor being computed."""
        return [s for s in seqs if s not in self._done and s not in self._inflight]

    def reserve(self, seqs: list[int]) -> None:
        """Mark ``seqs`` as being computed by the caller (it must :meth:`put` or :meth:`fail` them)."""
        loop = asyncio.get_running_loop()
        for s in seqs:
            self._inflight[s] = loop.create_future()

    def put(self, seqs: list[int], features: npt.NDArray[Any]) -> None:
        for s, f in zip(seqs, features, strict=True):
            vec = np.asarray(f, dtype=np.float32)
            self._done[s] = vec
            self._done.move_to_end(s)
            fut = self._inflight.pop(s, None)
            if fut is not None and not fut.done():
                fut.set_result(vec)
        self._bound()

    def fail(self, seqs: list[int], exc: BaseException) -> None:
        for s in seqs:
            fut = self._inflight.pop(s, None)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved here, so an unawaited failure is not reported twice

    async def wait(self, seqs: list[int]) -> dict[int, Vector]:
        """Features of ``seqs`` that are cached or being computed (the others are left out)."""
        out: dict[int, Vector] = {}
        for s in seqs:
            if s in self._done:
                out[s] = self._done[s]
            elif s in self._inflight:
                out[s] = await asyncio.shield(self._inflight[s])
        return out

    def forget_before(self, seq: int) -> None:
        """Drop features of frames before ``seq`` (no window can need them any more)."""
        for s in [s for s in self._done if s < seq]:
            del self._done[s]

    def _bound(self) -> None:
        while len(self._done) > self.keep:
            oldest = min(self._done)
            del self._done[oldest]
