"""Where the bridge sends records: our own small :class:`Producer` Protocol, and its Kafka implementation.

The bridge only needs "send this batch and return once the broker has all of it, else raise"; tests give it a fake
that implements this Protocol (never a mock of Kafka's client). :class:`KafkaProducer` is aiokafka's producer with
``acks="all"`` and idempotence on, so a batch acknowledged by Kafka is on every in-sync replica.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from common.errors import RetryableError


class ProducerUnavailable(RetryableError):
    """Kafka did not take a batch (unreachable, timed out, refused); the batch may be sent again."""


class Producer(Protocol):
    async def start(self) -> None: ...

    async def send_batch(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` records; return once the broker acknowledged every one, else raise."""
        ...

    async def stop(self) -> None: ...


class KafkaProducer:
    """The bridge's producer on a Kafka cluster (aiokafka)."""

    def __init__(self, brokers: Sequence[str], *, client_id: str, timeout_s: float) -> None:
        self.brokers = list(brokers)
        self.client_id = client_id
        self.timeout_s = timeout_s
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        producer = AIOKafkaProducer(
            bootstrap_servers=",".join(self.brokers),
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise ProducerUnavailable(
                f"cannot reach Kafka at {','.join(self.brokers)} ({type(exc).__name__}: {exc}); "
                "check FEQA_FLEET_BROKERS and that the broker is up"
            ) from None
        self._producer = producer

    async def send_batch(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        from aiokafka.errors import KafkaError

        if self._producer is None:
            raise ProducerUnavailable("the Kafka producer is not started")
        try:
            futures = [await self._producer.send(topic, value=value, key=key) for key, value in records]
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise ProducerUnavailable(f"Kafka did not take {len(records)} records for {topic}: {exc}") from None

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
