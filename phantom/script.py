"""The protocol script: which task runs from which frame to which, with its phases and repetitions.

Every task of the protocol is performed ``reps`` times in a row. One repetition is one segment of frames:
``idle`` (a random lead-in margin, then the subject's reaction delay), ``onset`` (ramp up), ``hold``, ``release``
(ramp down), ``idle`` (a random tail margin). A resting task (``Task.rest`` in :mod:`common.protocols`) asks for no
movement: its segment is the lead-in, a ``hold`` of 2.5-4.5 s with a neutral face, and the tail. Segments are
half-open frame ranges ``[start, end)`` and follow each other without gaps, so the whole clip is
``schedule[-1].end`` frames. A dataset clip is one segment, so its margins are random on both sides.

Durations come from the subject's traits (:mod:`phantom.traits`) and the clip's seed; severity enters only
through :func:`phantom.severity.ramp_s` (weak, noisy slowing). Every repetition draws the same number of random
values whatever the severity, so two severities of one seed share their margins, reactions and holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from common.protocols import get_protocol
from phantom.severity import ramp_s
from phantom.spec import PatientSpec

PHASES = ("idle", "onset", "hold", "release")
REST_S = (2.5, 4.5)

# Each task as weights on the deformation controls of phantom.deform (1.0 = full healthy movement).
TASK_ACTIONS: dict[str, dict[str, dict[str, float]]] = {
    "pfed5": {
        "rest": {},
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
    """The whole clip's schedule plus per-frame phase, activation envelope and progress through the hold."""

    segments: tuple[Segment, ...]
    segment_of: npt.NDArray[np.int32]  # [N] index into segments
    phase: npt.NDArray[np.int8]  # [N] index into PHASES
    envelope: npt.NDArray[np.float32]  # [N] 0..1 activation of the segment's task (smooth ramps)
    hold_progress: npt.NDArray[np.float32]  # [N] 0 before the hold, rising to 1 at its end, 1 after

    @property
    def n_frames(self) -> int:
        return int(self.segment_of.shape[0])


def _smoothstep(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _rep_marks(spec: PatientSpec, rest: bool, rng: np.random.Generator) -> tuple[list[float], float, float]:
    """Phase boundaries (s) from the segment start: [movement start, hold start, hold end, release end, end]; and
    the onset and release ramp durations. Always five draws, so severity never shifts the random stream."""
    tr = spec.traits
    z = rng.standard_normal(4)
    lead, tail = (float(v) for v in rng.uniform(*tr.margin_s, 2))
    s, pop = spec.impairment, spec.population
    if rest:
        hold = float(np.interp(z[0], [-2.0, 2.0], REST_S))
        t0 = lead
        return [t0, t0, t0 + hold, t0 + hold, t0 + hold + tail], 1.0, 1.0
    reaction = tr.reaction_s * float(np.exp(0.2 * z[0]))
    onset = ramp_s(spec.protocol, s, tr.speed, float(z[1]), pop)
    release = ramp_s(spec.protocol, s, tr.speed, float(z[2]), pop)
    hold = tr.hold_s * float(np.exp(0.15 * z[3]))
    t0 = lead + reaction
    marks = [t0, t0 + onset, t0 + onset + hold, t0 + onset + hold + release]
    return [*marks, marks[-1] + tail], onset, release


def build_script(spec: PatientSpec, fps: float) -> Script:
    """Lay the protocol out in frames at ``fps``."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rng = np.random.default_rng([spec.seed, 11])
    protocol = get_protocol(spec.protocol)
    segments: list[Segment] = []
    seg_ids: list[npt.NDArray[np.int32]] = []
    phases: list[npt.NDArray[np.int8]] = []
    envs: list[npt.NDArray[np.float32]] = []
    progress: list[npt.NDArray[np.float32]] = []
    start = 0
    for task in spec.task_list:
        rest = protocol.task(task).rest
        for rep in range(spec.reps):
            marks, onset, release = _rep_marks(spec, rest, rng)
            n = max(2, round(marks[-1] * fps))
            t = np.arange(n) / fps
            ph = np.zeros(n, np.int8)
            ph[(t >= marks[0]) & (t < marks[1])] = 1
            ph[(t >= marks[1]) & (t < marks[2])] = 2
            ph[(t >= marks[2]) & (t < marks[3])] = 3
            if rest:
                env = np.zeros(n, np.float32)
            else:
                rise = _smoothstep((t - marks[0]) / onset)
                fall = 1.0 - _smoothstep((t - marks[2]) / release)
                env = np.minimum(rise, fall).astype(np.float32)
            hold_len = max(1e-6, marks[2] - marks[1])
            progress.append(np.clip((t - marks[1]) / hold_len, 0.0, 1.0).astype(np.float32))
            segments.append(Segment(task, rep, start, start + n))
            seg_ids.append(np.full(n, len(segments) - 1, np.int32))
            phases.append(ph)
            envs.append(env)
            start += n
    return Script(
        tuple(segments),
        np.concatenate(seg_ids),
        np.concatenate(phases),
        np.concatenate(envs),
        np.concatenate(progress),
    )
