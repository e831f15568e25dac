"""The severity model: how a label turns into movement.

Let ``s`` be the impairment on [0, 1] (:func:`phantom.spec.impairment`: pfed5 ``severity/4``, neuroface
``(severity-1)/4``, palsy ``grade/3``) and ``k`` the 0-based repetition. For every task:

- **Amplitude (hypomimia, fatigue)**: the task's deformation is scaled by
  ``g = (1 - 0.75 s) * (1 - 0.1 s k)`` on both sides (pfed5, neuroface). Palsy weakens one side:
  ``g_weak = (1 - 0.9 s) * (1 - 0.1 s k)`` on the patient's weak side and ``g_strong = 1 - 0.1 s`` on the other.
  So range of motion falls strictly as severity rises, and later repetitions are smaller when ``s > 0``.
- **Speed**: onset and release each last ``0.45 * (1 + 1.5 s)`` seconds (a smoothstep ramp), so peak speed is
  roughly ``g / (1 + 1.5 s)`` of a healthy face's.
- **Onset delay**: the movement starts ``0.25 + 0.5 s`` seconds after the repetition's prompt.
- **Hold**: ``1.0 s`` plus a seed-drawn jitter of at most ``±0.25 s`` (the same for every severity).
- **Tremor** (pfed5, neuroface): a 5 Hz vertical oscillation of the jaw and lower lip of ``0.012 s``
  inter-ocular distances, present in every phase.
- **Blinks**: ``17 * (1 - 0.6 s)`` per minute for pfed5 (reduced blinking), 17 per minute otherwise; blinks
  happen only in idle phases so they never mask a task's movement.
- **Resting asymmetry** (palsy): the weak side droops at rest: mouth corner ``0.06 s`` down, brow ``0.05 s``
  down, lower lid ``0.02 s`` down.
"""

from __future__ import annotations

from dataclasses import dataclass

ONSET_S = 0.45
HOLD_S = 1.0
HOLD_JITTER_S = 0.25
LEAD_S = 0.4
TAIL_S = 0.5
TREMOR_HZ = 5.0
BLINK_PER_MIN = 17.0


@dataclass(frozen=True)
class RepTiming:
    """Durations of one repetition's phases in seconds."""

    lead: float
    latency: float
    onset: float
    hold: float
    release: float
    tail: float


def rep_timing(s: float, hold_jitter: float) -> RepTiming:
    """Phase durations for impairment ``s``; ``hold_jitter`` in [-1, 1] comes from the seed."""
    ramp = ONSET_S * (1.0 + 1.5 * s)
    return RepTiming(
        lead=LEAD_S,
        latency=0.25 + 0.5 * s,
        onset=ramp,
        hold=HOLD_S + HOLD_JITTER_S * hold_jitter,
        release=ramp,
        tail=TAIL_S,
    )


def side_gains(protocol: str, s: float, rep: int, weak_image_side: str) -> tuple[float, float]:
    """Amplitude gains (image-left, image-right) for one repetition."""
    fatigue = 1.0 - 0.1 * s * rep
    if protocol != "palsy":
        g = (1.0 - 0.75 * s) * fatigue
        return g, g
    weak = (1.0 - 0.9 * s) * fatigue
    strong = 1.0 - 0.1 * s
    return (weak, strong) if weak_image_side == "left" else (strong, weak)


def tremor_amplitude(protocol: str, s: float) -> float:
    """Tremor amplitude in inter-ocular distances."""
    return 0.0 if protocol == "palsy" else 0.012 * s


def blink_rate_per_s(protocol: str, s: float) -> float:
    """Mean blinks per second."""
    per_min = BLINK_PER_MIN * (1.0 - 0.6 * s) if protocol == "pfed5" else BLINK_PER_MIN
    return per_min / 60.0


def resting_droop(protocol: str, s: float) -> float:
    """Weak-side droop scale at rest (palsy only): 1.0 means the full droop described in the module docstring."""
    return s if protocol == "palsy" else 0.0


def weak_image_side(palsy_side: str) -> str:
    """The patient's weak side as an image side of an un-mirrored frame (patient's left is image-right)."""
    return "right" if palsy_side == "left" else "left"
