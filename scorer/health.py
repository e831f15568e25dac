"""The scorer's counters and latency, published as :class:`common.messages.Health` entries on ``feqa:health`` by
:class:`common.health.HealthPublisher` (which adds the bus's own counters as ``bus_<name>``).

Counters (cumulative since start): ``windows_in`` (read or reclaimed), ``windows_reclaimed``, ``windows_scored``,
``task_scores`` (task-end windows with a value), ``withheld_<reason>`` (``quality`` for every gate failure, then
``no_consent``, ``no_model``, ``no_task``, ``model_error``, ``short_window``, ``session_gone``,
``landmarker_mismatch``), ``windows_stale`` (hop windows older than ``stale_ms``, dropped), ``windows_superseded``
(hop windows with a newer one of their session in the same read, dropped), ``frames_computed`` / ``frames_reused``
(frame-graph features computed / taken from the cache), ``rgb_substituted`` (a frame whose crop was gone, replaced
by the nearest one), ``windows_left_to_new_owner`` (scored while the session's lease went to another worker:
published, left unacked for it to reclaim), ``dead_lettered``, ``sessions_taken``, ``errors``, and
``batch_<graph>_le_<n>`` (graph calls carrying at most n rows). Gauges: ``sessions``, ``models``,
``latency_p50_ms`` / ``latency_p99_ms`` (window creation by the tracker to its score's publication, over the last
1024 windows), ``batch_<graph>_mean`` (rows per call).
"""

from __future__ import annotations

import collections

import numpy as np

from scorer.batching import BatchStats

LATENCY_WINDOW = 1024


class ScorerStats:
    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def withheld(self, reason: str) -> None:
        self.counters[f"withheld_{reason.split(':', 1)[0]}"] += 1

    def latency(self, ms: float) -> None:
        self.latency_ms.append(ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latency_ms), q)) if self.latency_ms else 0.0

    def sample(
        self, gauges: dict[str, float], batches: dict[str, BatchStats]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(counters, gauges) for one Health entry: these counters, the batch-size buckets and the latency."""
        counters = {k: float(v) for k, v in self.counters.items()}
        out_gauges = dict(gauges)
        for kind, b in batches.items():
            for bucket, n in b.sizes.items():
                counters[f"batch_{kind}_{bucket}"] = float(n)
            out_gauges[f"batch_{kind}_mean"] = b.rows / b.calls if b.calls else 0.0
        out_gauges["latency_p50_ms"] = self.percentile(50)
        out_gauges["latency_p99_ms"] = self.percentile(99)
        return counters, out_gauges
