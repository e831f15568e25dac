"""Helpers the fleet tests share: task scores and sessions as the pipeline makes them, and a fake Kafka producer
that implements fleet.producer.Producer (it keeps what it was sent; it can fail or hang on request)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from common.messages import Consent, Score, SessionInfo
from fleet.producer import ProducerUnavailable

DAY = 86_400.0
T0 = 1_700_000_000.0


def task_score(sid: str, value: float | None, *, rep: int = 0, task: str = "smile", protocol: str = "pfed5",
               kind: str = "task", last_seq: int | None = None) -> Score:  # fmt: skip
    """A Score v2 as the scorer publishes it (withheld when ``value`` is None)."""
    return Score(
        sid=sid, ts=time.time(), kind=kind, protocol=protocol, task=task, rep=rep,
        first_seq=0, last_seq=100 * (rep + 1) if last_seq is None else last_seq, capture_ts=time.time(),
        score=value, raw=None if value is None else value + 0.05, scale="mds-updrs-3.2", scale_min=0.0, scale_max=4.0,
        model="" if value is None else f"trampformer:{protocol}/{task}", version="" if value is None else "v1",
        withheld="quality:face_fraction" if value is None else "", kinematics={"rom_mouth": 0.3},
    )  # fmt: skip


def session_info(sid: str, patient: str, created_ts: float, *, clinic: str = "c1") -> SessionInfo:
    return SessionInfo(sid=sid, patient_id=patient, protocol="pfed5", consent=Consent(live_scoring=True),
                       state="ended", source="webrtc", fps=30.0, created_ts=created_ts, clinic=clinic)  # fmt: skip


class FakeKafka:
    """A :class:`fleet.producer.Producer` in memory: ``sent`` holds (topic, key, value) in send order.

    ``fail`` is called before each batch and may return an error text (the batch is refused with it);
    ``hang_after_send`` keeps a batch (as if the broker had it) and never returns, like a bridge killed between
    Kafka's acknowledgement and its own ack in Redis."""

    def __init__(self, fail: Callable[[int], str] | None = None, hang_after_send: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.calls = 0
        self.fail = fail
        self.hang_after_send = hang_after_send
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def send_batch(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        self.calls += 1
        why = self.fail(self.calls) if self.fail else ""
        if why:
            raise ProducerUnavailable(why)
        self.sent.extend((topic, key, value) for key, value in records)
        if self.hang_after_send:
            await asyncio.Event().wait()

    async def stop(self) -> None:
        self.started = False
