"""Per-frame time series of one patient: deformation controls, head pose, tremor, lighting and a passing hand.

Everything is precomputed for the whole clip from the seeds, so any frame can be rendered in any order and the same
spec always yields the same frames. Severity enters only through :mod:`phantom.severity`; the subject's traits and
the clip's nuisance come from :mod:`phantom.traits`. Random events (blinks, spontaneous expressions, parted lips)
draw a fixed set of candidates from the seed and keep a rate-dependent subset, so two severities of one seed share
their event times and differ only in how many are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from phantom.deform import N_CONTROLS, SIDES, control_index
from phantom.script import PHASES, TASK_ACTIONS, Script
from phantom.severity import (
    blink_factor,
    hold_decay,
    lips_parted_fraction,
    resting_droop,
    side_gains,
    spontaneous_factor,
    unsteadiness,
    weak_image_side,
)
from phantom.spec import PatientSpec
from phantom.traits import ClipNuisance

F64 = npt.NDArray[np.float64]
BLINK_S = 0.3
N_MODES = 3
MAX_BLINK_PER_MIN = 30.0
MAX_SPONTANEOUS_PER_MIN = 12.0
PARTED_DWELL_S = 2.0
PARTED_LIP = 0.35
HEAD_TREMOR_DEG = 100.0  # pitch degrees per inter-ocular unit of tremor amplitude
SPONTANEOUS = (("smile", 0.3), ("brow_raise", 0.25), ("pucker", 0.2), ("lip_stretch", 0.2), ("brow_lower", 0.2))


@dataclass(frozen=True)
class Motion:
    """controls [N, 2*N_CONTROLS]; pose [N, 6] = yaw, pitch, roll (deg), dx, dy (frame fractions), scale;
    tremor [N] (inter-ocular units, applied at the subject's tremor site unless it is the head); micro [N, N_MODES]
    weights of the idle micro-motion modes; light [N, 3] RGB gains; hand [N] 0..1 how far a hand has risen."""

    controls: F64
    pose: F64
    tremor: F64
    micro: F64
    light: F64
    hand: F64


def _smooth_wave(rng: np.random.Generator, t: F64, amp: float, f_lo: float, f_hi: float, n: int = 2) -> F64:
    out = np.zeros_like(t)
    for k in range(n):
        f = rng.uniform(f_lo, f_hi)
        out += amp / (k + 1) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return out


def _resting(script: Script, rest_tasks: set[str]) -> npt.NDArray[np.bool_]:
    """Frames where the face is at rest: idle phases, and the whole of a resting task."""
    idle = script.phase == PHASES.index("idle")
    seg_task = np.array([seg.task in rest_tasks for seg in script.segments])
    out: npt.NDArray[np.bool_] = idle | seg_task[script.segment_of]
    return out


def _events(rng: np.random.Generator, duration: float, max_per_min: float, rate_per_min: float) -> F64:
    """Indices and times [K, 2] of events: a fixed candidate set at ``max_per_min``, of which a ``rate/max`` share is
    kept; the index lets each event draw its attributes from a per-candidate table shared by every rate."""
    candidates = np.sort(rng.uniform(0.0, duration, int(duration * max_per_min / 60.0) + 1))
    keep = np.asarray(rng.uniform(0.0, 1.0, candidates.shape[0]) < rate_per_min / max_per_min)
    out: F64 = np.stack([np.nonzero(keep)[0].astype(np.float64), candidates[keep]], axis=1)
    return out


def _blinks(spec: PatientSpec, script: Script, resting: npt.NDArray[np.bool_], fps: float) -> F64:
    n = script.n_frames
    rng = np.random.default_rng([spec.seed, 13])
    rate = spec.traits.blink_per_min * blink_factor(spec.protocol, spec.impairment)
    out = np.zeros(n)
    width = max(2, round(BLINK_S * fps))
    for _, t0 in _events(rng, n / fps, MAX_BLINK_PER_MIN, rate):
        a = int(t0 * fps)
        b = min(n, a + width)
        if b - a < 2 or not resting[a:b].all() or not (script.segment_of[a:b] == script.segment_of[a]).all():
            continue
        out[a:b] = np.maximum(out[a:b], np.sin(np.pi * (np.arange(b - a) + 0.5) / (b - a)))
    return out


def _spontaneous(spec: PatientSpec, script: Script, resting: npt.NDArray[np.bool_], fps: float) -> F64:
    """Small idle expressions (a flicker of a smile, a brow raise) as extra controls, only at rest."""
    n = script.n_frames
    rng = np.random.default_rng([spec.seed, 19])
    rate = spec.traits.spontaneous_per_min * spontaneous_factor(spec.protocol, spec.impairment) * spec.nuisance
    events = _events(rng, n / fps, MAX_SPONTANEOUS_PER_MIN, rate)
    count = int(n / fps * MAX_SPONTANEOUS_PER_MIN / 60.0) + 1
    kinds = rng.integers(0, len(SPONTANEOUS), count)
    sizes = rng.uniform(0.5, 1.0, count)
    lengths = rng.uniform(0.6, 1.6, count)
    out = np.zeros((n, 2 * N_CONTROLS))
    for index, t0 in events:
        k = int(index)
        a = int(t0 * fps)
        b = min(n, a + max(2, round(lengths[k] * fps)))
        if not resting[a]:
            continue
        name, peak = SPONTANEOUS[int(kinds[k])]
        bump = np.sin(np.pi * (np.arange(b - a) + 0.5) / (b - a)) ** 2 * peak * sizes[k] * resting[a:b]
        for side in SIDES:
            out[a:b, control_index(name, side)] += bump
    return out * spec.traits.expressiveness


def _lips_parted(spec: PatientSpec, n: int, fps: float) -> F64:
    """0..1 per frame: a two-state process whose parted share is :func:`lips_parted_fraction`."""
    f = lips_parted_fraction(spec.protocol, spec.impairment)
    u = np.random.default_rng([spec.seed, 31]).uniform(0.0, 1.0, n + 1)
    if f <= 0.0:
        return np.zeros(n)
    p_close = 1.0 / (PARTED_DWELL_S * fps)
    p_open = p_close * f / max(1e-6, 1.0 - f)
    state = np.zeros(n)
    on = u[0] < f
    for i in range(n):
        on = (u[i + 1] >= p_close) if on else (u[i + 1] < p_open)
        state[i] = 1.0 if on else 0.0
    k = max(1, round(0.3 * fps))
    return np.convolve(np.pad(state, (k, k), mode="edge"), np.ones(k) / k, mode="same")[k:-k]


def _voluntary(spec: PatientSpec, script: Script, fps: float) -> F64:
    s, tr = spec.impairment, spec.traits
    weak = weak_image_side(spec.palsy_side)
    controls = np.zeros((script.n_frames, 2 * N_CONTROLS))
    asym = [1.0 - tr.asymmetry * spec.nuisance if side == tr.asymmetry_side else 1.0 for side in SIDES]
    decay = hold_decay(spec.protocol, s, weak)
    waver = unsteadiness(spec.protocol, s)
    rng = np.random.default_rng([spec.seed, 37])
    for seg in script.segments:
        freq, phase = rng.uniform(2.5, 3.5), rng.uniform(0.0, 2 * np.pi)
        actions = TASK_ACTIONS[spec.protocol][seg.task]
        if not actions:
            continue
        gains = side_gains(spec.protocol, s, seg.rep, weak)
        env = script.envelope[seg.start : seg.end].astype(np.float64)
        prog = script.hold_progress[seg.start : seg.end].astype(np.float64)
        holding = (prog > 0) & (prog < 1)
        wobble = 1.0 + waver * holding * np.sin(2 * np.pi * freq * np.arange(env.shape[0]) / fps + phase)
        for k, side in enumerate(SIDES):
            level = env * (1.0 - decay[k] * prog) * wobble * gains[k] * asym[k] * tr.expressiveness
            for name, weight in actions.items():
                controls[seg.start : seg.end, control_index(name, side)] += weight * level
    return controls


def _pose(spec: PatientSpec, nuisance: ClipNuisance, t: F64, fps: float) -> F64:
    rng = np.random.default_rng([spec.seed, 17])
    base = rng.uniform(-1.0, 1.0, 3) * np.array([4.0, 3.0, 2.0])
    drift = spec.head_motion * spec.traits.head_motion
    pose = np.stack(
        [
            base[0] + drift * _smooth_wave(rng, t, 5.0, 0.05, 0.2),
            base[1] + drift * _smooth_wave(rng, t, 3.0, 0.05, 0.2),
            base[2] + drift * _smooth_wave(rng, t, 2.5, 0.05, 0.2),
            nuisance.dx + drift * _smooth_wave(rng, t, 0.025, 0.03, 0.12),
            nuisance.dy + drift * _smooth_wave(rng, t, 0.015, 0.03, 0.12),
            nuisance.scale * (1.0 + drift * _smooth_wave(rng, t, 0.04, 0.02, 0.08)),
        ],
        axis=1,
    )
    duration = t[-1] + 1.0 / fps
    for ev in nuisance.head:
        u = (t - ev.at * duration) / ev.duration_s
        inside = (u >= 0) & (u < 1)
        if ev.kind == "turn":
            pose[:, 0] += spec.head_motion * ev.degrees * inside * np.sin(np.pi * np.clip(u, 0, 1)) ** 2
        else:
            pose[:, 1] += spec.head_motion * ev.degrees * inside * np.sin(2 * np.pi * ev.cycles * np.clip(u, 0, 1))
    return pose


def _light(nuisance: ClipNuisance, t: F64) -> F64:
    gain = np.ones((t.shape[0], 3))
    duration = t[-1] + 1e-9
    for ev in sorted(nuisance.light, key=lambda e: e.at):
        x = np.clip((t - ev.at * duration) / ev.ramp_s, 0.0, 1.0)
        w = (x * x * (3 - 2 * x))[:, None]
        gain = gain * (1 - w) + np.asarray(ev.gain)[None, :] * w
    return gain


def _hand(spec: PatientSpec, nuisance: ClipNuisance, t: F64) -> F64:
    ev = nuisance.hand
    if ev is None:
        return np.zeros(t.shape[0])
    u = (t - ev.at * (t[-1] + 1e-9)) / ev.duration_s
    rise = np.clip(np.minimum(u, 1.0 - u) / 0.25, 0.0, 1.0)
    out: F64 = rise * ((u >= 0) & (u < 1))
    return out


def build_motion(spec: PatientSpec, script: Script, fps: float) -> Motion:
    """All per-frame series for ``spec`` laid out on ``script``."""
    n = script.n_frames
    s, tr = spec.impairment, spec.traits
    rest_tasks = {seg.task for seg in script.segments if not TASK_ACTIONS[spec.protocol][seg.task]}
    resting = _resting(script, rest_tasks)
    controls = _voluntary(spec, script, fps) + _spontaneous(spec, script, resting, fps)
    active = np.clip(script.envelope.astype(np.float64), 0.0, 1.0)
    parted = _lips_parted(spec, n, fps) * (1.0 - active)
    for side in SIDES:
        controls[:, control_index("lip_part", side)] += PARTED_LIP * parted
        controls[:, control_index("jaw_open", side)] += 0.08 * parted
    droop = resting_droop(spec.protocol, s)
    if droop > 0:
        controls[:, control_index("droop", weak_image_side(spec.palsy_side))] += droop
    controls[:, control_index("droop", tr.asymmetry_side)] += tr.resting_asymmetry * spec.nuisance
    blink = _blinks(spec, script, resting, fps)
    for side in SIDES:
        c = control_index("eye_close", side)
        controls[:, c] = np.maximum(controls[:, c], blink)
    t = np.arange(n) / fps
    nuisance = ClipNuisance.draw(spec.seed) if spec.nuisance else ClipNuisance.draw(spec.seed).framing_only()
    pose = _pose(spec, nuisance, t, fps)
    rng = np.random.default_rng([spec.seed, 41])
    wave = tr.tremor * spec.nuisance * np.sin(2 * np.pi * tr.tremor_hz * t + rng.uniform(0, 2 * np.pi))
    if tr.tremor_site == "head":
        pose[:, 1] += HEAD_TREMOR_DEG * spec.head_motion * wave  # a head holder stops it too
        wave = np.zeros(n)
    micro = np.stack([_smooth_wave(rng, t, 1.0, 0.2, 0.8) for _ in range(N_MODES)], axis=1)
    return Motion(controls, pose, wave, micro, _light(nuisance, t), _hand(spec, nuisance, t))
