"""The severity model: how a label turns into movement, and only into movement.

Let ``s`` be the impairment on [0, 1] (:func:`phantom.spec.impairment`: pfed5 ``severity/4``, neuroface
``(severity-1)/4``, palsy ``grade/3``) and ``k`` the 0-based repetition. Severity never sets a duration, a clip
length or any other timing beyond the weak, noisy slowing below; every nuisance (speed, reaction, hold, margins,
expressiveness, tremor, blink rate, asymmetry, occlusions, lighting, framing, head motion) comes from
:mod:`phantom.traits`, drawn from seeds alone.

- **Range of motion**: a task's deformation is scaled by ``g = (1 - 0.75 s) (1 - 0.1 s k)`` on both sides (pfed5,
  neuroface). Palsy weakens one side: ``g_weak = (1 - 0.9 s) (1 - 0.1 s k)`` on the patient's weak side and
  ``g_strong = 1 - 0.1 s``. The subject's expressiveness and mild asymmetry multiply on top.
- **Sustaining (decrement, fatigue)**: during the hold the expression fades by ``0.3 s`` of its peak (both sides
  for pfed5 and neuroface, the weak side for palsy), so a held expression sags more the more impaired the face.
- **Unsteadiness** (neuroface): the hold wavers at 2.5-3.5 Hz with a depth of ``0.12 s`` of the peak.
- **Slowness (bradykinesia; pfed5, neuroface)**: ramps last ``0.45 s x speed x (1 + 0.25 s) x jitter`` (jitter
  log-normal, sd 0.15); with the subject's speed spread over x0.7-1.5 this is a weak, noisy effect. The ``timing``
  population drops it, and a palsied face is weak, not slow.
- **Resting face, pfed5** (MDS-UPDRS 3.2 anchors): blinks ``x (1 - 0.6 s)`` of the subject's own rate (anchor 1);
  spontaneous small expressions ``x (1 - 0.8 s)`` of the subject's rate (anchor 2, less movement around the mouth);
  lips parted at rest for a fraction of the time rising from 0 at ``s <= 0.5`` (label 2) to 0.35 at ``s = 0.75``
  (label 3, "some of the time") and 0.8 at ``s = 1`` (label 4, "most of the time"). The ``rest`` task is a neutral
  face: it asks for no movement, so only these show.
- **Resting asymmetry** (palsy): the weak side droops at rest: mouth corner ``0.06 s`` down, brow ``0.05 s`` down,
  lower lid ``0.02 s`` down.
"""

from __future__ import annotations

import numpy as np

ONSET_S = 0.45
BRADYKINESIA = 0.25
RAMP_JITTER = 0.15
HOLD_DECAY = 0.3
UNSTEADY_DEPTH = 0.12
BLINK_LOSS = 0.6
SPONTANEOUS_LOSS = 0.8
_PARTED_S = (0.5, 0.75, 1.0)
_PARTED_FRACTION = (0.0, 0.35, 0.8)


def ramp_s(protocol: str, s: float, speed: float, jitter: float, population: str) -> float:
    """Duration of one onset or release ramp; ``jitter`` is a standard normal draw from the clip's seed."""
    slowing = 0.0 if population == "timing" or protocol == "palsy" else BRADYKINESIA
    return ONSET_S * speed * (1.0 + slowing * s) * float(np.exp(RAMP_JITTER * jitter))


def side_gains(protocol: str, s: float, rep: int, weak_image_side: str) -> tuple[float, float]:
    """Range-of-motion gains (image-left, image-right) for one repetition, before the subject's traits."""
    fatigue = 1.0 - 0.1 * s * rep
    if protocol != "palsy":
        g = (1.0 - 0.75 * s) * fatigue
        return g, g
    weak = (1.0 - 0.9 * s) * fatigue
    strong = 1.0 - 0.1 * s
    return (weak, strong) if weak_image_side == "left" else (strong, weak)


def hold_decay(protocol: str, s: float, weak_image_side: str) -> tuple[float, float]:
    """Fraction of the peak lost by the end of the hold, (image-left, image-right)."""
    d = HOLD_DECAY * s
    if protocol != "palsy":
        return d, d
    return (d, 0.0) if weak_image_side == "left" else (0.0, d)


def unsteadiness(protocol: str, s: float) -> float:
    """Depth of the hold's wavering, as a fraction of the peak."""
    return UNSTEADY_DEPTH * s if protocol == "neuroface" else 0.0


def blink_factor(protocol: str, s: float) -> float:
    """Multiplier on the subject's own blink rate."""
    return 1.0 - BLINK_LOSS * s if protocol == "pfed5" else 1.0


def spontaneous_factor(protocol: str, s: float) -> float:
    """Multiplier on the subject's rate of small spontaneous expressions."""
    return 1.0 - SPONTANEOUS_LOSS * s if protocol == "pfed5" else 1.0


def lips_parted_fraction(protocol: str, s: float) -> float:
    """Fraction of the resting time the lips hang parted (pfed5 anchors 3 and 4)."""
    if protocol != "pfed5":
        return 0.0
    return float(np.interp(s, _PARTED_S, _PARTED_FRACTION))


def resting_droop(protocol: str, s: float) -> float:
    """Weak-side droop scale at rest (palsy only): 1.0 means the full droop described in the module docstring."""
    return s if protocol == "palsy" else 0.0


def weak_image_side(palsy_side: str) -> str:
    """The patient's weak side as an image side of an un-mirrored frame (patient's left is image-right)."""
    return "right" if palsy_side == "left" else "left"
