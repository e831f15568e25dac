"""The guided clinical protocols (design.md §4): tasks in order, the prompt shown, repetitions and hold times."""

from __future__ import annotations

import dataclasses
from typing import Any

from common.errors import PermanentError


class UnknownProtocol(PermanentError):
    """A protocol or task name that is not in :data:`PROTOCOLS`."""


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    prompt: str
    reps: int = 3
    hold_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    scale: str
    tasks: tuple[Task, ...]

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise UnknownProtocol(f"protocol {self.name} has no task {name!r}; tasks: {', '.join(self.task_names)}")

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

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
                {"name": t.name, "prompt": t.prompt, "reps": reps or t.reps, "hold_s": hold_s or t.hold_s}
                for t in self.tasks
            ],
        }


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "pfed5",
            "Facial expression (MDS-UPDRS 3.2)",
            "0-4",
            (
                Task("rest", "Sit still and look at the camera with a relaxed face.", reps=1, hold_s=10.0),
                Task("smile", "Smile as widely as you can, showing your teeth."),
                Task("frown", "Frown: pull your eyebrows down and together."),
                Task("squeeze_eyes", "Squeeze your eyes shut tightly."),
                Task("clench_teeth", "Clench your teeth and pull your lips back."),
            ),
        ),
        Protocol(
            "neuroface",
            "Orofacial tasks (Toronto NeuroFace)",
            "1-5",
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
            "I-VI",
            (
                Task("raise_brows", "Raise both eyebrows."),
                Task("close_eyes_gently", "Close your eyes gently, as if sleeping."),
                Task("close_eyes_tightly", "Close your eyes as tightly as you can."),
                Task("scrunch", "Scrunch up your nose."),
                Task("smile", "Smile widely, showing your teeth."),
                Task("pucker", "Pucker your lips forward."),
            ),
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``, or :class:`UnknownProtocol` naming the ones that exist."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UnknownProtocol(f"unknown protocol {name!r}; use one of {', '.join(PROTOCOLS)}") from None
