"""The clinical protocols (design.md §4): the one table of tasks, prompts, pacing and label scales.

Every package reads this table: the patient page's guided runner (ingest), the synthetic patient (phantom), the
dataset readers and model names (trainer), model lookup (scorer) and the rating forms (dashboard). Nothing else
lists tasks or scales.

Scales (higher is always worse):

- ``pfed5``: MDS-UPDRS part III item 3.2 (facial expression), 0 normal .. 4 severe, integer anchors.
- ``neuroface``: Toronto NeuroFace overall Likert rating, 1 normal .. 5 severe; rater means may be fractional.
- ``palsy``: the four FPara grades the ALGRNet paper groups House-Brackmann I-VI into: 0 normal (HB I),
  1 low (HB II), 2 medium (HB III-IV), 3 high (HB V-VI).

A model artifact is named by protocol and task (:func:`model_key`): ``pfed5/smile`` and ``palsy/smile`` are
different models.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from common.errors import PermanentError


class UnknownProtocol(PermanentError):
    """A protocol or task name that is not in :data:`PROTOCOLS`."""


@dataclasses.dataclass(frozen=True)
class Scale:
    """A label scale: its range, whether raters give whole numbers, and what each anchor means."""

    name: str
    min: float
    max: float
    integer: bool
    anchors: tuple[str, ...]  # meaning of min, min+1, ..., max (one per whole step)
    source: str

    def __post_init__(self) -> None:
        if self.max <= self.min:
            raise ValueError(f"scale {self.name}: max must exceed min")
        if len(self.anchors) != round(self.max - self.min) + 1:
            raise ValueError(f"scale {self.name}: one anchor per whole step from {self.min:g} to {self.max:g}")

    @property
    def label(self) -> str:
        """Short text such as ``0-4``."""
        return f"{self.min:g}-{self.max:g}"

    def clamp(self, value: float) -> float:
        return min(self.max, max(self.min, value))

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max

    def unit(self, value: float) -> float:
        """``value`` mapped to [0, 1] (0 = the normal end of the scale)."""
        return (value - self.min) / (self.max - self.min)

    def anchor(self, value: float) -> str:
        """The anchor text nearest ``value``."""
        i = round(self.clamp(value) - self.min)
        return self.anchors[i]


@dataclasses.dataclass(frozen=True)
class Task:
    """One guided task: what the patient is asked, how often and for how long."""

    name: str
    prompt: str
    reps: int = 3
    hold_s: float = 5.0
    eyes_closed: bool = False  # the patient cannot see the screen during the hold: cue its end with a sound
    rest: bool = False  # a neutral face is held (no movement is asked for)


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    scale: Scale
    tasks: tuple[Task, ...]

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise UnknownProtocol(f"protocol {self.name} has no task {name!r}; tasks: {', '.join(self.task_names)}")

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def has_task(self, name: str) -> bool:
        return name in self.task_names

    def for_page(
        self, *, countdown_s: float, rest_s: float, hold_s: float | None = None, reps: int | None = None
    ) -> dict[str, Any]:
        """The JSON the patient page runs, with the deployment's pacing applied."""
        return {
            "name": self.name,
            "title": self.title,
            "countdown_s": countdown_s,
            "rest_s": rest_s,
            "tasks": [
                {
                    "name": t.name,
                    "prompt": t.prompt,
                    "reps": reps or t.reps,
                    "hold_s": hold_s or t.hold_s,
                    "eyes_closed": t.eyes_closed,
                }
                for t in self.tasks
            ],
        }


UPDRS_3_2 = Scale(
    "mds-updrs-3.2",
    0.0,
    4.0,
    integer=True,
    anchors=(
        "normal facial expression",
        "slight: minimal masked facies, only decreased frequency of blinking",
        "mild: also less movement of the lower face (fewer spontaneous smiles), lips not parted",
        "moderate: masked facies with lips parted some of the time when the mouth is at rest",
        "severe: masked facies with lips parted most of the time when the mouth is at rest",
    ),
    source="MDS-UPDRS part III, item 3.2",
)
NEUROFACE_LIKERT = Scale(
    "neuroface-likert",
    1.0,
    5.0,
    integer=False,
    anchors=("normal", "slight impairment", "mild impairment", "moderate impairment", "severe impairment"),
    source="Toronto NeuroFace overall rating (5-point Likert, rater mean)",
)
PALSY_GRADES = Scale(
    "palsy-grade",
    0.0,
    3.0,
    integer=True,
    anchors=(
        "normal (House-Brackmann I)",
        "low (House-Brackmann II)",
        "medium (House-Brackmann III-IV)",
        "high (House-Brackmann V-VI)",
    ),
    source="FPara grades grouped from House-Brackmann I-VI as in the ALGRNet paper",
)

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "pfed5",
            "Facial expression (MDS-UPDRS 3.2)",
            UPDRS_3_2,
            (
                Task("rest", "Sit still and look at the camera with a relaxed face.", reps=1, hold_s=10.0, rest=True),
                Task("smile", "Smile as widely as you can, showing your teeth."),
                Task("frown", "Frown: pull your eyebrows down and together."),
                Task("squeeze_eyes", "Squeeze your eyes shut tightly.", eyes_closed=True),
                Task("clench_teeth", "Clench your teeth and pull your lips back."),
            ),
        ),
        Protocol(
            "neuroface",
            "Orofacial tasks (Toronto NeuroFace)",
            NEUROFACE_LIKERT,
            (
                Task("blow", "Puff out your cheeks as if blowing up a balloon."),
                Task("kiss", "Pucker your lips as if giving a kiss."),
                Task("brow", "Raise your eyebrows as high as you can."),
                Task("open", "Open your mouth as wide as you can."),
                Task("spread", "Spread your lips in a wide 'eee'."),
                Task("bigsmile", "Give the biggest smile you can."),
            ),
        ),
        Protocol(
            "palsy",
            "Facial nerve grading (House-Brackmann style)",
            PALSY_GRADES,
            (
                Task("raise_brows", "Raise both eyebrows."),
                Task("close_eyes_gently", "Close your eyes gently, as if sleeping.", eyes_closed=True),
                Task("close_eyes_tightly", "Close your eyes as tightly as you can.", eyes_closed=True),
                Task("scrunch", "Scrunch up your nose."),
                Task("smile", "Smile widely, showing your teeth."),
                Task("pucker", "Pucker your lips forward."),
            ),
        ),
    )
}

PROTOCOL_TASKS: dict[str, tuple[str, ...]] = {name: p.task_names for name, p in PROTOCOLS.items()}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``, or :class:`UnknownProtocol` naming the ones that exist."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}") from None


def model_key(protocol: str, task: str) -> str:
    """The artifact folder of a task's model under ``models/``: ``<protocol>/<task>`` (checked against the table)."""
    get_protocol(protocol).task(task)
    return f"{protocol}/{task}"
