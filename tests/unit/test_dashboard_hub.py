"""The hub's per-client queue: bounded, drops oldest, counts drops, skips entries already sent."""

from __future__ import annotations

import asyncio

import pytest

from dashboard.hub import Client, Item, encode_entry, id_tuple, pump
from tests.dashboard_kit import score

pytestmark = pytest.mark.unit


def _item(i: int, key: str = "scores:{s1}") -> Item:
    return Item(key, f"{1000 + i}-0", f'{{"n":{i}}}')


def test_a_full_queue_drops_its_oldest_and_counts() -> None:
    client = Client(4)
    for i in range(10):
        client.put(_item(i))
    assert len(client) == 4 and client.dropped == 6
    items = asyncio.run(client.take())
    assert [it.text for it in items] == ['{"n":6}', '{"n":7}', '{"n":8}', '{"n":9}']


def test_held_entries_queue_after_the_replay_and_duplicates_are_skipped() -> None:
    client = Client(16)
    key = "scores:{s1}"
    client.hold(key)
    client.put_live(_item(5))  # live entry arriving while the replay is read
    client.put_many([_item(3), _item(4), _item(5)])  # the replay (it also saw entry 5)
    client.release(key)
    items = asyncio.run(client.take())
    sent = [it.entry_id for it in items if client.fresh(it)]
    assert sent == ["1003-0", "1004-0", "1005-0"]


def test_pump_batches_and_reports_drops() -> None:
    frames: list[str] = []

    async def go() -> None:
        client = Client(2)
        for i in range(5):
            client.put(_item(i))

        async def send(text: str) -> None:
            frames.append(text)

        from dashboard.hub import Hub

        task = asyncio.ensure_future(pump(client, send, Hub(bus=None)))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(go())
    assert (
        len(frames) == 1 and '"n":3' in frames[0] and '"n":4' in frames[0] and '{"t": "dropped", "n": 3}' in frames[0]
    )


def test_entries_encode_with_their_stream_id_and_bad_ids_are_refused() -> None:
    text = encode_entry("scores:{s9}", "5-1", score("s9", value=None))
    assert text.startswith('{"t":"score","sid":"s9","id":"5-1"') and '"score":null' in text
    assert id_tuple("12-3") == (12, 3) and id_tuple("7") == (7, 0)
    with pytest.raises(ValueError):
        id_tuple("abc-1")
