"""What a synthetic patient is: protocol, severity, palsy side, repetitions, and an identity drawn from the seed.

Severity is a label on the protocol's scale, read from common.protocols (higher is always worse): ``pfed5``
MDS-UPDRS 3.2, 0-4; ``neuroface`` NeuroFace Likert, 1-5; ``palsy`` the four FPara grades, 0-3.

Fractional values are allowed (a rater mean of 2.5 is a valid NeuroFace label).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from common.protocols import PROTOCOL_TASKS as PROTOCOL_TASKS  # re-exported for phantom modules
from common.protocols import PROTOCOLS
from phantom.traits import SubjectTraits, check_population

# Severity is a label on the protocol's scale (common.protocols, the one table).
SEVERITY_RANGE: dict[str, tuple[float, float]] = {name: (p.scale.min, p.scale.max) for name, p in PROTOCOLS.items()}
APPEARANCES = ("cartoon", "photo")


def impairment(protocol: str, severity: float) -> float:
    """Severity mapped onto [0, 1]: 0 is a healthy face, 1 the most severe label of the protocol's scale."""
    lo, hi = SEVERITY_RANGE[protocol]
    return (severity - lo) / (hi - lo)


@dataclass(frozen=True)
class Identity:
    """Face geometry and appearance; units are inter-ocular distances (eye centre to eye centre) unless noted."""

    face_width: float  # half width of the jaw at the temples
    face_length: float  # chin depth below the eye line
    forehead: float  # forehead height above the eye line
    eye_width: float  # half width of one eye
    eye_height: float  # half height of one open eye
    canthal_tilt: float  # outer corner raise
    iris: float  # iris radius
    brow_height: float  # brow centre above the eye line
    brow_thickness: float
    brow_length: float  # half length of one brow
    nose_length: float  # nose tip below the eye line
    nose_width: float  # half width of the nostril wings
    mouth_y: float  # mouth line below the eye line
    mouth_width: float  # half width of the mouth
    upper_lip: float  # upper lip thickness
    lower_lip: float  # lower lip thickness
    hair_length: float  # how far the hair falls below the temples
    hairline: float  # hairline depth below the top of the head, as a fraction of the forehead
    skin: tuple[int, int, int]
    lips: tuple[int, int, int]
    hair: tuple[int, int, int]
    iris_colour: tuple[int, int, int]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]
    shirt: tuple[int, int, int]
    light_angle: float  # radians, direction the light comes from on screen
    light_strength: float
    noise_sigma: float  # sensor noise, grey levels
    blur: bool

    @classmethod
    def from_seed(cls, seed: int) -> Identity:
        """Draw an identity; the same seed always gives the same face."""
        rng = np.random.default_rng([seed, 7])

        def u(lo: float, hi: float) -> float:
            return float(rng.uniform(lo, hi))

        tone = u(0.0, 1.0)
        skin = tuple(int(v) for v in np.array([236, 196, 170]) * (1 - tone) + np.array([120, 80, 58]) * tone)
        lips = (min(255, int(skin[0] * 0.9 + 30)), int(skin[1] * 0.55), int(skin[2] * 0.6))
        hair_choices = [(30, 22, 18), (70, 45, 25), (120, 85, 50), (200, 170, 110), (140, 140, 140), (15, 15, 15)]
        iris_choices = [(70, 45, 25), (60, 100, 140), (80, 110, 70), (40, 30, 20)]
        bg1 = tuple(int(v) for v in rng.integers(60, 230, 3))
        bg2 = tuple(int(v) for v in rng.integers(30, 200, 3))
        shirt = rng.integers(20, 220, 3)
        return cls(
            face_width=u(0.92, 1.08),
            face_length=u(1.35, 1.6),
            forehead=u(0.95, 1.15),
            eye_width=u(0.2, 0.25),
            eye_height=u(0.075, 0.095),
            canthal_tilt=u(-0.01, 0.03),
            iris=u(0.085, 0.1),
            brow_height=u(0.3, 0.38),
            brow_thickness=u(0.045, 0.08),
            brow_length=u(0.26, 0.32),
            nose_length=u(0.55, 0.68),
            nose_width=u(0.15, 0.2),
            mouth_y=u(0.92, 1.02),
            mouth_width=u(0.36, 0.44),
            upper_lip=u(0.06, 0.09),
            lower_lip=u(0.08, 0.12),
            hair_length=u(0.0, 1.2),
            hairline=u(0.1, 0.3),
            skin=(skin[0], skin[1], skin[2]),
            lips=(lips[0], lips[1], lips[2]),
            hair=hair_choices[int(rng.integers(len(hair_choices)))],
            iris_colour=iris_choices[int(rng.integers(len(iris_choices)))],
            background=((bg1[0], bg1[1], bg1[2]), (bg2[0], bg2[1], bg2[2])),
            shirt=(int(shirt[0]), int(shirt[1]), int(shirt[2])),
            light_angle=u(-np.pi, np.pi),
            light_strength=u(0.08, 0.22),
            noise_sigma=u(1.5, 4.0),
            blur=bool(rng.integers(2)),
        )


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"patient spec field {name} must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class PatientSpec:
    """One synthetic patient: who (seed), which protocol, how impaired, how many repetitions of each task.

    ``palsy_side`` names the patient's own weak side; the phantom faces the camera un-mirrored, so the patient's
    left is the image-right half (insightface "right" groups 87-105). ``tasks`` restricts the protocol to a subset
    (empty = every task of the protocol, in protocol order). ``identity_seed`` (default: ``seed``) draws the face,
    so one subject can perform many clips with different motion seeds. ``head_motion`` scales head pose drift, turns
    and nods (0 = a head held still, as in a head holder; the frame-to-frame pose is then constant).

    ``population`` picks the ranges the subject's traits are drawn from (:mod:`phantom.traits`: ``standard``, or
    ``timing`` / ``amplitude`` with that group widened); ``appearance`` is ``cartoon`` (the fast flat face) or
    ``photo`` (a real portrait warped onto the moving mesh, :mod:`phantom.photoreal`). ``nuisance=False`` gives a
    clean face for measuring the instrument itself: no glasses or hand, no lighting change, no tremor, no spontaneous
    expression, no asymmetry and no head turn or nod (timing, expressiveness, blinks and framing stay).
    """

    seed: int
    protocol: str
    severity: float
    palsy_side: str = "left"
    reps: int = 3
    tasks: tuple[str, ...] = ()
    identity_seed: int | None = None
    head_motion: float = 1.0
    population: str = "standard"
    appearance: str = "cartoon"
    nuisance: bool = True
    identity: Identity = field(init=False, repr=False, compare=False)
    traits: SubjectTraits = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOL_TASKS:
            raise ValueError(f"unknown protocol {self.protocol!r}; use one of {sorted(PROTOCOL_TASKS)}")
        lo, hi = SEVERITY_RANGE[self.protocol]
        if not lo <= float(self.severity) <= hi:
            raise ValueError(f"{self.protocol} severity must lie in [{lo:g}, {hi:g}], got {self.severity}")
        if self.palsy_side not in ("left", "right"):
            raise ValueError(f"palsy_side must be 'left' or 'right', got {self.palsy_side!r}")
        if not 0.0 <= self.head_motion <= 3.0:
            raise ValueError(f"head_motion must lie in [0, 3], got {self.head_motion}")
        if self.reps < 1:
            raise ValueError(f"reps must be >= 1, got {self.reps}")
        unknown = [t for t in self.tasks if t not in PROTOCOL_TASKS[self.protocol]]
        if unknown:
            raise ValueError(f"tasks {unknown} are not in protocol {self.protocol}: {PROTOCOL_TASKS[self.protocol]}")
        check_population(self.population)
        if self.appearance not in APPEARANCES:
            raise ValueError(f"appearance must be one of {APPEARANCES}, got {self.appearance!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "identity", Identity.from_seed(self.subject_seed))
        object.__setattr__(self, "traits", SubjectTraits.draw(self.subject_seed, self.population))

    @property
    def subject_seed(self) -> int:
        """The seed of the person: their face and traits (``identity_seed``, else ``seed``)."""
        return self.seed if self.identity_seed is None else self.identity_seed

    @property
    def task_list(self) -> tuple[str, ...]:
        """The tasks this patient performs, in order."""
        return self.tasks or PROTOCOL_TASKS[self.protocol]

    @property
    def impairment(self) -> float:
        """Severity on [0, 1] (see :func:`impairment`)."""
        return impairment(self.protocol, float(self.severity))

    def to_json(self) -> str:
        """The spec as JSON (the identity is not stored: it is redrawn from the seed)."""
        data = {k: v for k, v in asdict(self).items() if k not in ("identity", "traits")}
        data["tasks"] = list(self.tasks)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PatientSpec:
        """Parse :meth:`to_json` output; raise ValueError on malformed or out-of-range input."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"patient spec is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("patient spec must be a JSON object")
        try:
            return cls(
                seed=int(data["seed"]),
                protocol=str(data["protocol"]),
                severity=float(data["severity"]),
                palsy_side=str(data.get("palsy_side", "left")),
                reps=int(data.get("reps", 3)),
                tasks=tuple(str(t) for t in data.get("tasks", ())),
                identity_seed=None if data.get("identity_seed") is None else int(data["identity_seed"]),
                head_motion=float(data.get("head_motion", 1.0)),
                population=str(data.get("population", "standard")),
                appearance=str(data.get("appearance", "cartoon")),
                nuisance=_flag(data.get("nuisance", True), "nuisance"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"patient spec is missing or mistypes a field: {exc}") from exc
