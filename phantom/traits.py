"""Everything about a synthetic patient that is not severity: per-subject traits and per-clip nuisance.

Severity must be recoverable only from how the face moves, so nothing here reads it: :class:`SubjectTraits` is
drawn from the subject's identity seed alone and :class:`ClipNuisance` from the clip's motion seed alone. A
subject keeps its traits across clips and severities; two clips of one subject differ in their nuisance.

Subject traits (the ``standard`` population; ``timing`` and ``amplitude`` widen one group of ranges):

==================  =====================================  ==========================  ======================
trait               meaning                                standard                    widened
==================  =====================================  ==========================  ======================
speed               ramp duration multiplier               0.7 - 1.5                   timing: 0.45 - 2.2
reaction_s          delay from prompt to movement (s)      0.15 - 0.8                  timing: 0.05 - 1.6
hold_s              how long a movement is held (s)        0.7 - 2.0                   timing: 0.4 - 3.0
expressiveness      amplitude of every voluntary and       0.6 - 1.4                   amplitude: 0.35 - 1.65
                    spontaneous movement
tremor              4-6 Hz oscillation in 35 % of          0.004 - 0.02 IOD            same
                    subjects, at the jaw, lips or head
blink_per_min       healthy blink rate                     8 - 26                      same
asymmetry           gain lost on one side (every           0 - 0.15                    same
                    protocol), plus a resting droop        0 - 0.25 of palsy's
spontaneous_per_min small idle expressions                 2 - 10                      same
glasses             wears glasses                          25 %                        same
head_motion         head drift multiplier                  0.4 - 1.4                   same
==================  =====================================  ==========================  ======================

Clip nuisance: random margins before and after the movement (0.2 - 1.6 s each; timing population 0.1 - 3.0 s),
camera distance (face size x0.75 - 1.3) and framing (centre offset), 0-2 head turns (yaw 8-20 deg) or nods
(pitch 5-10 deg, 1-2 cycles), 0-2 lighting changes (gain 0.75 - 1.25 with a colour cast), and in 20 % of clips a
hand that rises over part of the lower face for 0.6 - 1.6 s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POPULATIONS = ("standard", "timing", "amplitude")
TREMOR_SITES = ("jaw", "lips", "head")
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "standard": {
        "speed": (0.7, 1.5),
        "reaction_s": (0.15, 0.8),
        "hold_s": (0.7, 2.0),
        "expressiveness": (0.6, 1.4),
        "margin_s": (0.2, 1.6),
    },
    "timing": {
        "speed": (0.45, 2.2),
        "reaction_s": (0.05, 1.6),
        "hold_s": (0.4, 3.0),
        "expressiveness": (0.6, 1.4),
        "margin_s": (0.1, 3.0),
    },
    "amplitude": {
        "speed": (0.7, 1.5),
        "reaction_s": (0.15, 0.8),
        "hold_s": (0.7, 2.0),
        "expressiveness": (0.35, 1.65),
        "margin_s": (0.2, 1.6),
    },
}


def check_population(population: str) -> None:
    if population not in POPULATIONS:
        raise ValueError(f"population must be one of {POPULATIONS}, got {population!r}")


def _span(u: float | np.floating, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(lo + u * (hi - lo))


@dataclass(frozen=True)
class SubjectTraits:
    """A subject's movement style and looks beyond the face geometry (see the module table)."""

    speed: float
    reaction_s: float
    hold_s: float
    expressiveness: float
    tremor: float  # inter-ocular distances (0 = no tremor)
    tremor_hz: float
    tremor_site: str
    blink_per_min: float
    asymmetry: float
    resting_asymmetry: float
    asymmetry_side: str  # image side
    spontaneous_per_min: float
    glasses: bool
    head_motion: float
    margin_s: tuple[float, float]  # range of the clip margins, carried here so one population sets them all

    @classmethod
    def draw(cls, identity_seed: int, population: str = "standard") -> SubjectTraits:
        """The traits of the subject ``identity_seed``; the same uniform draws are spread over each population's
        ranges, so a subject is recognisably the same person in every population."""
        check_population(population)
        r = _RANGES[population]
        u = np.random.default_rng([identity_seed, 53]).uniform(0.0, 1.0, 14)
        has_tremor = u[4] < 0.35
        return cls(
            speed=_span(u[0], r["speed"]),
            reaction_s=_span(u[1], r["reaction_s"]),
            hold_s=_span(u[2], r["hold_s"]),
            expressiveness=_span(u[3], r["expressiveness"]),
            tremor=_span(u[5], (0.004, 0.02)) if has_tremor else 0.0,
            tremor_hz=_span(u[6], (4.0, 6.0)),
            tremor_site=TREMOR_SITES[int(u[7] * len(TREMOR_SITES)) % len(TREMOR_SITES)],
            blink_per_min=_span(u[8], (8.0, 26.0)),
            asymmetry=_span(u[9], (0.0, 0.15)),
            resting_asymmetry=_span(u[10], (0.0, 0.25)),
            asymmetry_side="left" if u[11] < 0.5 else "right",
            spontaneous_per_min=_span(u[12], (2.0, 10.0)),
            glasses=bool(u[13] < 0.25),
            head_motion=_span(float(np.random.default_rng([identity_seed, 59]).uniform()), (0.4, 1.4)),
            margin_s=r["margin_s"],
        )


@dataclass(frozen=True)
class HeadEvent:
    """A head turn (``kind == "turn"``: yaw bump) or nod (pitch oscillation); times are clip fractions."""

    kind: str
    at: float
    duration_s: float
    degrees: float
    cycles: int


@dataclass(frozen=True)
class LightEvent:
    """The light changes to ``gain`` (per RGB channel) over ``ramp_s`` seconds at clip fraction ``at``."""

    at: float
    ramp_s: float
    gain: tuple[float, float, float]


@dataclass(frozen=True)
class HandEvent:
    """A hand rises over the lower face on image side ``side`` at clip fraction ``at`` for ``duration_s``;
    ``reach`` (0-1) is how far up the face it comes."""

    at: float
    duration_s: float
    side: str
    reach: float


@dataclass(frozen=True)
class ClipNuisance:
    """Framing and events of one clip (see the module docstring)."""

    scale: float
    dx: float
    dy: float
    head: tuple[HeadEvent, ...]
    light: tuple[LightEvent, ...]
    hand: HandEvent | None

    def framing_only(self) -> ClipNuisance:
        """The same framing without any event (no head turn or nod, no light change, no hand)."""
        return ClipNuisance(self.scale, self.dx, self.dy, (), (), None)

    @classmethod
    def draw(cls, seed: int) -> ClipNuisance:
        rng = np.random.default_rng([seed, 61])
        scale = float(rng.uniform(0.75, 1.3))
        dx, dy = float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.05, 0.05))
        head = []
        for _ in range(int(rng.integers(0, 3))):
            if rng.uniform() < 0.5:
                head.append(
                    HeadEvent(
                        "turn",
                        float(rng.uniform()),
                        float(rng.uniform(0.5, 1.5)),
                        float(rng.choice([-1, 1]) * rng.uniform(8, 20)),
                        1,
                    )
                )
            else:
                head.append(
                    HeadEvent(
                        "nod",
                        float(rng.uniform()),
                        float(rng.uniform(0.6, 1.4)),
                        float(rng.uniform(5, 10)),
                        int(rng.integers(1, 3)),
                    )
                )
        light = []
        for _ in range(int(rng.integers(0, 3))):
            level = float(rng.uniform(0.75, 1.25))
            cast = rng.uniform(-0.06, 0.06, 3)
            gain = tuple(float(v) for v in level * (1.0 + cast - cast.mean()))
            light.append(LightEvent(float(rng.uniform()), float(rng.uniform(0.2, 1.0)), (gain[0], gain[1], gain[2])))
        hand = None
        if rng.uniform() < 0.2:
            hand = HandEvent(
                float(rng.uniform()),
                float(rng.uniform(0.6, 1.6)),
                "left" if rng.uniform() < 0.5 else "right",
                float(rng.uniform(0.3, 0.8)),
            )
        return cls(scale, dx, dy, tuple(head), tuple(light), hand)
