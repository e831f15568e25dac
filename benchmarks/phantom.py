"""Phantom render speed on one core: ours (precomputed background, textures, noise) vs the plain path.

The plain reference path draws the same frames with the same code but rebuilds the background, the lit skin
textures and the noise tile for every frame, as a renderer without precomputation would. Both paths produce the
same pixels (checked). Target: ``fps_640x480`` >= 200.

    python benchmarks/phantom.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the phantom package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import click  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from phantom.face import Phantom  # noqa: E402
from phantom.render import FaceRenderer  # noqa: E402
from phantom.spec import PatientSpec  # noqa: E402

SIZES = {"640x480": (640, 480), "256x256": (256, 256)}


def _pin_one_core() -> None:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _plain_render(ph: Phantom, index: int) -> np.ndarray:
    renderer = FaceRenderer(ph.spec.identity, ph.width, ph.height, ph.spec.seed, noise=ph.noise)
    return ph.render_with(renderer, index)


def _fps(fn: object, ph: Phantom, n: int) -> float:
    render = fn if callable(fn) else None
    if render is None:
        raise TypeError("fn must be callable")
    render(ph, 0)
    t0 = time.perf_counter()
    for i in range(n):
        render(ph, i % ph.n_frames)
    return n / (time.perf_counter() - t0)


@click.command()
@click.option("--quick", is_flag=True, help="fewer frames (< 60 s)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(quick: bool, json_path: Path | None) -> None:
    """Print a table of frames/s, ours vs plain, and optionally write the figures as flat JSON."""
    _pin_one_core()
    n_ours, n_plain = (300, 30) if quick else (2000, 150)
    figures: dict[str, float] = {}
    rows = []
    for name, (w, h) in SIZES.items():
        seeds_fps, plain_fps = [], []
        for seed in (0, 1, 2):  # identities with and without blur, long hair, ...
            ph = Phantom(PatientSpec(seed=seed, protocol="pfed5", severity=2.0), w, h, 30)
            if not np.array_equal(ph.render(7), _plain_render(ph, 7)):
                raise click.ClickException("plain and precomputed paths disagree")
            seeds_fps.append(_fps(lambda p, i: p.render(i), ph, n_ours // 3))
            plain_fps.append(_fps(_plain_render, ph, max(3, n_plain // 3)))
        ours, plain = float(np.mean(seeds_fps)), float(np.mean(plain_fps))
        ph = Phantom(PatientSpec(seed=0, protocol="pfed5", severity=2.0), w, h, 30)
        t0 = time.perf_counter()
        for i in range(n_ours):
            ph.truth(i % ph.n_frames)
        truth = n_ours / (time.perf_counter() - t0)
        figures[f"fps_{name}"] = round(ours, 1)
        figures[f"plain_fps_{name}"] = round(plain, 1)
        figures[f"speedup_{name}"] = round(ours / plain, 2)
        figures[f"truth_per_s_{name}"] = round(truth, 1)
        rows.append((name, ours, plain, ours / plain, 1000 / ours, truth))
    click.echo(f"{'size':<9} {'ours fps':>9} {'plain fps':>10} {'ratio':>7} {'ms/frame':>9} {'truth/s':>9}")
    for name, ours, plain, ratio, ms, truth in rows:
        click.echo(f"{name:<9} {ours:>9.1f} {plain:>10.1f} {ratio:>6.1f}x {ms:>9.2f} {truth:>9.0f}")
    target = figures["fps_640x480"] >= 200
    click.echo(f"target fps_640x480 >= 200: {'met' if target else 'NOT met'}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
