"""The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) on landmark arrays, in face-size units.

Each coordinate is low-pass filtered with a cutoff that rises with its (filtered) speed: at rest the cutoff is
``min_cutoff`` Hz (jitter is smoothed), in motion it is ``min_cutoff + beta * |speed|`` (little lag). Speeds are
measured in face sizes per second (px/s divided by a scale, the inter-ocular distance), so one setting behaves the
same for a face of any size. A time step that is not positive (a repeated or reordered
timestamp) leaves the state as it is; a gap longer than ``max_gap_s`` or a :meth:`reset` starts over.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def _alpha(cutoff: F64 | float, dt: float) -> F64:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return np.asarray(1.0 / (1.0 + tau / dt), dtype=np.float64)


class OneEuro:
    def __init__(self, min_cutoff: float = 1.0, beta: float = 10.0, d_cutoff: float = 1.0, max_gap_s: float = 1.0):
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("One Euro filter needs min_cutoff > 0, d_cutoff > 0 and beta >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.max_gap_s = max_gap_s
        self._x: F64 | None = None
        self._dx: F64 | None = None
        self._t = 0.0

    def reset(self) -> None:
        self._x = self._dx = None

    def state(self) -> tuple[F64 | None, F64 | None, float]:
        """A snapshot for :meth:`restore` (the arrays are never modified in place, so no copy is needed)."""
        return self._x, self._dx, self._t

    def restore(self, state: tuple[F64 | None, F64 | None, float]) -> None:
        self._x, self._dx, self._t = state

    def __call__(self, points: F32, t: float, scale: float) -> F32:
        """Filtered ``points`` (any shape, px) at time ``t`` s; ``scale`` px per unit (the inter-ocular distance)."""
        x = np.asarray(points, dtype=np.float64)
        if self._x is None or self._dx is None or self._x.shape != x.shape or t - self._t > self.max_gap_s:
            self._x, self._dx, self._t = x, np.zeros_like(x), t
            return np.asarray(points, dtype=np.float32)
        dt = t - self._t
        if dt <= 0:
            return np.asarray(self._x, dtype=np.float32)
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / max(float(scale), 1e-6)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return np.asarray(self._x, dtype=np.float32)
