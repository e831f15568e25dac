"""Phantom render speed on one core: ours vs the plain path, for the cartoon and the photo-real face.

Cartoon: the plain reference path draws the same frames with the same code but rebuilds the background, the lit
skin textures and the noise tile for every frame, as a renderer without precomputation would. Both paths produce the
same pixels (checked). Target: ``fps_640x480`` >= 200.

Photo-real: ours warps the portrait with one dense map (triangle ids rasterised, one ``cv2.remap``); the plain path
warps each mesh triangle on its own (``cv2.warpAffine`` of its box, masked copy), the textbook piecewise-affine
warp. The two agree to within a grey level or two along triangle edges (checked). ``fps_photoreal_640x480`` is
stated, with no target: the photo-real mode is for real landmarkers, the cartoon for speed.

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
from phantom.photoreal import PhotoRenderer  # noqa: E402
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


class _TriangleByTriangle(PhotoRenderer):
    """The textbook piecewise-affine warp: one warpAffine and one masked copy per triangle."""

    def warp_mesh(self, frame: np.ndarray, src: np.ndarray, dst: np.ndarray, roi: tuple[int, int, int, int]) -> None:
        for k in self.warper.order:
            s, d = src[self.warper.triangles[k]], dst[self.warper.triangles[k]]
            x0, y0 = (int(v) for v in np.floor(d.min(axis=0)))
            x1, y1 = (int(v) + 2 for v in np.ceil(d.max(axis=0)))
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, frame.shape[1]), min(y1, frame.shape[0])
            if x1 <= x0 or y1 <= y0 or abs(np.cross(d[1] - d[0], d[2] - d[0])) < 1e-6:
                continue
            m = cv2.getAffineTransform(s.astype(np.float32), (d - (x0, y0)).astype(np.float32))
            patch = cv2.warpAffine(self.face.image, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT_101)  # fmt: skip
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillConvexPoly(mask, np.round((d - (x0, y0)) * 16).astype(np.int32), 255, cv2.LINE_8, 4)
            cv2.copyTo(patch, mask, frame[y0:y1, x0:x1])


def _photo_fps(w: int, h: int, n: int) -> tuple[float, float]:
    """(ours, plain) frames/s of the photo-real face over a few identities of both portraits."""
    ours, plain = [], []
    for seed in (0, 2):
        ph = Phantom(PatientSpec(seed=seed, protocol="pfed5", severity=2.0, appearance="photo"), w, h, 30)
        slow = _TriangleByTriangle(ph._photo, ph.spec.identity, w, h, ph.spec.seed, noise=ph.noise)  # type: ignore[arg-type]
        diff = np.abs(ph.render(7).astype(int) - ph.render_with(slow, 7).astype(int))
        if diff.mean() > 1.0:
            raise click.ClickException(f"photo-real paths disagree (mean abs difference {diff.mean():.2f})")
        ours.append(_fps(lambda p, i: p.render(i), ph, n))
        plain.append(_fps(lambda p, i, r=slow: p.render_with(r, i), ph, max(3, n // 3)))
    return float(np.mean(ours)), float(np.mean(plain))


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
    photo, photo_plain = _photo_fps(640, 480, 60 if quick else 300)
    figures["fps_photoreal_640x480"] = round(photo, 1)
    figures["plain_fps_photoreal_640x480"] = round(photo_plain, 1)
    figures["speedup_photoreal_640x480"] = round(photo / photo_plain, 2)
    click.echo(f"{'face':<20} {'ours fps':>9} {'plain fps':>10} {'ratio':>7} {'ms/frame':>9} {'truth/s':>9}")
    for name, ours, plain, ratio, ms, truth in rows:
        click.echo(f"{'cartoon ' + name:<20} {ours:>9.1f} {plain:>10.1f} {ratio:>6.1f}x {ms:>9.2f} {truth:>9.0f}")
    click.echo(f"{'photo-real 640x480':<20} {photo:>9.1f} {photo_plain:>10.1f} {photo / photo_plain:>6.1f}x "
               f"{1000 / photo:>9.2f}")  # fmt: skip
    target = figures["fps_640x480"] >= 200
    click.echo(f"target fps_640x480 >= 200: {'met' if target else 'NOT met'}")
    if json_path is not None:
        json_path.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
