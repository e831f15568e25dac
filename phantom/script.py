"""The protocol script: which task runs from which frame to which, with its phases and repetitions.

Every task of the protocol is performed ``reps`` times in a row. One repetition is one segment of frames:
``idle`` (lead-in, then the onset delay), ``onset`` (ramp up), ``hold``, ``release`` (ramp down), ``idle`` (tail).
Segments are half-open frame ranges ``[start, end)`` and follow each other without gaps, so the whole clip is
``schedule[-1].end`` frames. Durations come from :mod:`phantom.severity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from phantom.severity import rep_timing
from phantom.spec import PatientSpec

PHASES = ("idle", "onset", "hold", "release")

# Each task as weights on the deformation controls of phantom.deform (1.0 = full healthy movement).
TASK_ACTIONS: dict[str, dict[str, dict[str, float]]] = {
    "pfed5": {
        "rest": {"smile": 0.4, "brow_raise": 0.25},
        "smile": {"smile": 1.0, "eye_close": 0.12},
        "frown": {"brow_lower": 1.0},
        "squeeze_eyes": {"eye_close": 1.0, "brow_lower": 0.5, "nose_scrunch": 0.4},
        "clench_teeth": {"lip_part": 1.0, "lip_stretch": 0.4},
    },
    "neuroface": {
        "blow": {"cheek_puff": 1.0, "pucker": 0.5},
        "kiss": {"pucker": 1.0},
        "brow": {"brow_raise": 1.0},
        "open": {"jaw_open": 1.0},
        "spread": {"lip_stretch": 1.0, "lip_part": 0.6},
        "bigsmile": {"smile": 1.0, "jaw_open": 0.3, "lip_part": 0.4, "eye_close": 0.15},
    },
    "palsy": {
        "raise_brows": {"brow_raise": 1.0},
        "close_eyes_gently": {"eye_close": 0.97},
        "close_eyes_tightly": {"eye_close": 1.0, "brow_lower": 0.4, "nose_scrunch": 0.3},
        "scrunch": {"nose_scrunch": 1.0, "eye_close": 0.3},
        "smile": {"smile": 1.0, "lip_part": 0.3},
        "pucker": {"pucker": 1.0},
    },
}


class Segment(NamedTuple):
    """One repetition of one task: frames ``[start, end)``."""

    task: str
    rep: int
    start: int
    end: int


@dataclass(frozen=True)
class Script:
    """The whole clip's schedule plus per-frame phase and activation envelope."""

    segments: tuple[Segment, ...]
    segment_of: npt.NDArray[np.int32]  # [N] index into segments
    phase: npt.NDArray[np.int8]  # [N] index into PHASES
    envelope: npt.NDArray[np.float32]  # [N] 0..1 activation of the segment's task

    @property
    def n_frames(self) -> int:
        return int(self.segment_of.shape[0])


def _smoothstep(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def build_script(spec: PatientSpec, fps: float) -> Script:
    """Lay the protocol out in frames at ``fps``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rng = np.random.default_rng([spec.seed, 11])
    s = spec.impairment
    segments: list[Segment] = []
    seg_ids: list[npt.NDArray[np.int32]] = []
    phases: list[npt.NDArray[np.int8]] = []
    envs: list[npt.NDArray[np.float32]] = []
    start = 0
    for task in spec.task_list:
        for rep in range(spec.reps):
            tm = rep_timing(s, float(rng.uniform(-1.0, 1.0)))
            marks = np.cumsum([tm.lead + tm.latency, tm.onset, tm.hold, tm.release, tm.tail])
            n = max(2, round(marks[-1] * fps))
            t = np.arange(n) / fps
            ph = np.zeros(n, np.int8)
            ph[(t >= marks[0]) & (t < marks[1])] = 1
            ph[(t >= marks[1]) & (t < marks[2])] = 2
            ph[(t >= marks[2]) & (t < marks[3])] = 3
            rise = _smoothstep((t - marks[0]) / tm.onset)
            fall = 1.0 - _smoothstep((t - marks[2]) / tm.release)
            env = np.minimum(rise, fall).astype(np.float32)
            segments.append(Segment(task, rep, start, start + n))
            seg_ids.append(np.full(n, len(segments) - 1, np.int32))
            phases.append(ph)
            envs.append(env)
            start += n
    return Script(tuple(segments), np.concatenate(seg_ids), np.concatenate(phases), np.concatenate(envs))
