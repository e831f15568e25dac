"""Stream entries as the bus hands them out (:class:`Delivery`), the bus's counters, and the parsing of Redis
stream replies."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from common.messages import Message
from common.streams import StreamSpec

M = TypeVar("M", bound=Message)
Raw = tuple[str, str, dict[bytes, bytes] | None]  # key, entry id, fields (None: trimmed while pending)


@dataclasses.dataclass(slots=True)
class Delivery(Generic[M]):
    """One decoded entry of stream ``spec`` (session ``sid``) with its Redis id. (Not frozen: a frozen dataclass's
    __init__ costs several times more, and one is made per entry read.)"""

    spec: StreamSpec[Any]
    sid: str | None
    id: str
    message: M

    @property
    def stream(self) -> str:
        return self.spec.key(self.sid)


@dataclasses.dataclass
class BusStats:
    """Counters a service reports in its Health entries (drops and failures are visible, never silent)."""

    published: int = 0
    refused: int = 0  # writes to a session's stream that is gone (the session ended)
    consumed: int = 0
    acked: int = 0
    reclaimed: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # undecodable entries passed over by plain reads
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def rows(key: str, entries: Iterable[Any]) -> list[Raw]:
    """XRANGE / XREVRANGE rows of one stream."""
    return [(key, text(entry_id), fields) for entry_id, fields in entries]


def flatten(reply: Any) -> list[Raw]:
    """An XREAD / XREADGROUP reply over several streams, RESP2 (list) or RESP3 (dict)."""
    out: list[Raw] = []
    if not reply:
        return out
    items = reply.items() if isinstance(reply, dict) else reply
    for key, entries in items:
        if isinstance(entries, list) and entries and isinstance(entries[0], list) and len(entries) == 1:
            entries = entries[0]
        for entry_id, fields in entries:
            out.append((text(key), text(entry_id), fields))
    return out
