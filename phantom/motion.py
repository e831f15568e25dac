"""Per-frame time series of one patient: deformation controls, head pose, blinks, tremor and idle micro-motion.

Everything is precomputed for the whole clip from the seed, so any frame can be rendered in any order and the same
spec always yields the same frames. Severity enters only through :mod:`phantom.severity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from phantom.deform import N_CONTROLS, SIDES, control_index
from phantom.script import PHASES, TASK_ACTIONS, Script
from phantom.severity import (
    TREMOR_HZ,
    blink_rate_per_s,
    resting_droop,
    side_gains,
    tremor_amplitude,
    weak_image_side,
)
from phantom.spec import PatientSpec

F64 = npt.NDArray[np.float64]
BLINK_S = 0.3
N_MODES = 3


@dataclass(frozen=True)
class Motion:
    """controls [N, 2*N_CONTROLS]; pose [N, 6] = yaw, pitch, roll (deg), dx, dy (frame fractions), scale;
    tremor [N] (inter-ocular units); micro [N, N_MODES] weights of the idle micro-motion modes."""

    controls: F64
    pose: F64
    tremor: F64
    micro: F64


def _smooth_wave(rng: np.random.Generator, t: F64, amp: float, f_lo: float, f_hi: float, n: int = 2) -> F64:
    out = np.zeros_like(t)
    for k in range(n):
        f = rng.uniform(f_lo, f_hi)
        out += amp / (k + 1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def _blinks(spec: PatientSpec, script: Script, fps: float) -> F64:
    n = script.n_frames
    rng = np.random.default_rng([spec.seed, 13])
    rate = blink_rate_per_s(spec.protocol, spec.impairment)
    duration = n / fps
    # draw a fixed number of candidate times, then keep a rate-dependent subset, so severities share blink times
    candidates = np.sort(rng.uniform(0.0, duration, int(duration * 0.5) + 1))
    keep = rng.uniform(0.0, 1.0, candidates.shape[0]) < rate / 0.5
    idle = script.phase == PHASES.index("idle")
    out = np.zeros(n)
    width = max(2, round(BLINK_S * fps))
    for t0 in candidates[keep]:
        a = int(t0 * fps)
        b = min(n, a + width)
        if b - a < 2 or not idle[a:b].all() or not (script.segment_of[a:b] == script.segment_of[a]).all():
            continue
        out[a:b] = np.maximum(out[a:b], np.sin(np.pi * (np.arange(b - a) + 0.5) / (b - a)))
    return out


def build_motion(spec: PatientSpec, script: Script, fps: float) -> Motion:
    """All per-frame series for ``spec`` laid out on ``script``."""
    n = script.n_frames
    s = spec.impairment
    weak = weak_image_side(spec.palsy_side)
    controls = np.zeros((n, 2 * N_CONTROLS))
    actions = TASK_ACTIONS[spec.protocol]
    for seg in script.segments:
        gains = side_gains(spec.protocol, s, seg.rep, weak)
        env = script.envelope[seg.start : seg.end].astype(np.float64)
        for name, weight in actions[seg.task].items():
            for side, gain in zip(SIDES, gains, strict=True):
                controls[seg.start : seg.end, control_index(name, side)] += weight * gain * env
    droop = resting_droop(spec.protocol, s)
    if droop > 0:
        controls[:, control_index("droop", weak)] = droop
    blink = _blinks(spec, script, fps)
    for side in SIDES:
        c = control_index("eye_close", side)
        controls[:, c] = np.maximum(controls[:, c], blink)
    t = np.arange(n) / fps
    rng = np.random.default_rng([spec.seed, 17])
    base = rng.uniform(-1.0, 1.0, 6) * np.array([4.0, 3.0, 2.0, 0.02, 0.015, 0.04])
    drift = spec.head_motion
    pose = np.stack(
        [
            base[0] + drift * _smooth_wave(rng, t, 5.0, 0.05, 0.2),
            base[1] + drift * _smooth_wave(rng, t, 3.0, 0.05, 0.2),
            base[2] + drift * _smooth_wave(rng, t, 2.5, 0.05, 0.2),
            base[3] + drift * _smooth_wave(rng, t, 0.025, 0.03, 0.12),
            base[4] + drift * _smooth_wave(rng, t, 0.015, 0.03, 0.12),
            1.0 + base[5] + drift * _smooth_wave(rng, t, 0.04, 0.02, 0.08),
        ],
        axis=1,
    )
    phase = rng.uniform(0, 2 * np.pi)
    tremor = tremor_amplitude(spec.protocol, s) * np.sin(2 * np.pi * TREMOR_HZ * t + phase)
    micro = np.stack([_smooth_wave(rng, t, 1.0, 0.2, 0.8) for _ in range(N_MODES)], axis=1)
    return Motion(controls=controls, pose=pose, tremor=tremor, micro=micro)
