"""De-duplication of stream entries by their natural key, for consumers that must count each entry once.

The bus retries a publish whose reply was lost, so the entry may be stored twice (see common.bus); a new owner of
a session may also be handed entries its predecessor had already finished. Consumers therefore remember the keys
they handled recently (frame ``seq``, ``Score.key``) and skip repeats. Memory is bounded: only the newest
``capacity`` keys are kept, which must cover the stream's bound (an entry older than that is trimmed anyway).
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentKeys(Generic[K]):
    """The newest ``capacity`` keys seen; :meth:`add` says whether a key is new."""

    def __init__(self, capacity: int, seen: Iterable[K] = ()) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._order: collections.deque[K] = collections.deque()
        self._keys: set[K] = set()
        self.capacity = capacity
        for key in seen:
            self.add(key)

    def add(self, key: K) -> bool:
        """Remember ``key``; False when it was already among the recent keys (a duplicate)."""
        if key in self._keys:
            return False
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) > self.capacity:
            self._keys.discard(self._order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._order)
