"""Photo-real phantom: the warp keeps the truth exact, the mesh keeps the lips and eyes apart, identities vary."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from phantom.face import Phantom
from phantom.layout import N_POINTS, eye_path, idx, inner_lip_path, outer_lip_path
from phantom.photo import PHOTOS, photo_face, photo_points
from phantom.photoreal import EYE_CENTRES, MESH, PhotoRenderer
from phantom.spec import PatientSpec
from phantom.warp import affines, map_points

pytestmark = pytest.mark.unit


def _photo_phantom(seed: int, protocol: str = "pfed5", **kw: object) -> Phantom:
    spec = PatientSpec(seed=seed, protocol=protocol, severity=1.0 if protocol != "neuroface" else 2.0, reps=1,
                       appearance="photo", **kw)  # type: ignore[arg-type]  # fmt: skip
    return Phantom(spec, 640, 480, 12)


def _seed_for(name: str, mirrored: bool) -> int:
    for seed in range(100):
        face = photo_face(seed, PatientSpec(seed, "pfed5", 0).identity)
        if face.name == name and face.mirrored == mirrored:
            return seed
    raise AssertionError(f"no seed draws {name} mirrored={mirrored}")


@pytest.mark.parametrize("name", PHOTOS)
def test_marked_points_follow_the_layout(name: str) -> None:
    pts = photo_points(name)
    assert pts.shape == (106, 2) and np.isfinite(pts).all()
    assert pts[idx("left_eye_pupil"), 0] < pts[idx("nose_tip"), 0] < pts[idx("right_eye_pupil"), 0]
    assert pts[idx("left_eyebrow_upper_middle"), 1] < pts[idx("left_eye_top"), 1] < pts[idx("nose_tip"), 1]
    assert pts[idx("nose_tip"), 1] < pts[idx("mouth_upper_lip_top"), 1] < pts[idx("contour_chin"), 1]
    with pytest.raises(ValueError, match="unknown photo"):
        photo_points("mona_lisa")


@pytest.mark.parametrize(("name", "mirrored"), [(p, m) for p in PHOTOS for m in (False, True)])
def test_mesh_keeps_lips_and_eyes_apart(name: str, mirrored: bool) -> None:
    """Every lip and eye outline edge is shared by exactly two triangles, so no triangle spans the mouth or an eye."""
    ph = _photo_phantom(_seed_for(name, mirrored))
    renderer = ph.renderer
    assert isinstance(renderer, PhotoRenderer)
    position = {int(i): k for k, i in enumerate(MESH)}
    edges: dict[frozenset[int], int] = {}
    for t in renderer.warper.triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            edges[frozenset((int(a), int(b)))] = edges.get(frozenset((int(a), int(b))), 0) + 1
    for path in (outer_lip_path(), inner_lip_path(), eye_path("left"), eye_path("right")):
        for a, b in zip(path, path[1:] + path[:1], strict=True):
            assert edges.get(frozenset((position[a], position[b]))) == 2, (name, mirrored, a, b)
    face = ph._photo
    assert face is not None
    left, right = face.source[idx("left_eye_pupil")], face.source[idx("right_eye_pupil")]
    assert left[0] < right[0]  # a mirrored portrait keeps image-left points on the image left


def _frames(ph: Phantom) -> list[int]:
    out = []
    for seg in ph.schedule:
        out += [seg.start, (seg.start + seg.end) // 2]
    return out


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_warp_maps_each_photo_landmark_exactly_to_the_truth_point(seed: int) -> None:
    ph = _photo_phantom(seed, "neuroface")
    renderer = ph.renderer
    assert isinstance(renderer, PhotoRenderer)
    face = ph._photo
    assert face is not None
    for i in _frames(ph):
        pts, _ = ph.project(i)
        src, dst, _ = renderer.mesh_points(pts)
        landmarks = MESH[MESH < N_POINTS]
        np.testing.assert_allclose(dst[: len(landmarks)], ph.truth(i).landmarks[landmarks], atol=1e-4)
        mats, ok = affines(renderer.warper.triangles, src, dst)
        for vertex, k in enumerate(MESH[MESH < N_POINTS]):  # every landmark but the eye centres (on the pupils)
            around = [t for t, tri in enumerate(renderer.warper.triangles) if vertex in tri and ok[t]]
            assert around, k
            back = map_points(mats, np.array(around), np.repeat(dst[vertex : vertex + 1], len(around), axis=0))
            np.testing.assert_allclose(back, np.repeat(face.source[k : k + 1], len(around), axis=0), atol=1e-6)
    assert len(MESH[MESH < N_POINTS]) == N_POINTS - len(EYE_CENTRES)


def _dots(face_image: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A grey picture with a small disc of a unique colour at each landmark, and those colours."""
    img = np.full_like(face_image, 128)
    colours = np.stack([(37 * k) % 200 + 40 for k in range(N_POINTS)]), np.arange(N_POINTS) * 2 + 20
    palette = np.stack([colours[0], colours[1], 255 - colours[0]], axis=1).astype(np.uint8)
    for k in range(N_POINTS):
        centre = tuple(int(v) for v in np.round(source[k] * 16))
        cv2.circle(img, centre, 26, tuple(int(c) for c in palette[k]), -1, cv2.LINE_8, 4)
    return img, palette


@pytest.mark.parametrize("seed", [0, 2])
def test_the_truth_pixel_shows_the_landmarks_own_colour(seed: int) -> None:
    """Draw each photo landmark as a coloured dot (radius 1.6 px), warp with nearest-pixel sampling: the frame pixel
    nearest each truth point shows exactly that dot's colour."""
    ph = _photo_phantom(seed, "palsy", nuisance=False, tasks=("raise_brows", "smile"), head_motion=0.5)
    face = ph._photo
    assert face is not None
    image, palette = _dots(face.image, face.source)
    flat = dataclasses.replace(ph.spec.identity, light_strength=0.0, blur=False, noise_sigma=0.0)
    renderer = PhotoRenderer(dataclasses.replace(face, image=image), flat, 640, 480, 1, noise=False,
                             interpolation=cv2.INTER_NEAREST)  # fmt: skip
    # the mouth's inside is painted over where the lips meet or part; the eye centres sit on the pupils
    skip = set(inner_lip_path()) | set(EYE_CENTRES)
    checked = 0
    for i in _frames(ph):
        pts, unit = ph.project(i)
        frame = renderer.draw(pts, unit)
        truth = ph.truth(i).landmarks
        for k in range(N_POINTS):
            if k in skip:
                continue
            x, y = (int(v) for v in np.round(truth[k]))
            if not (0 <= x < 640 and 0 <= y < 480):
                continue
            assert np.array_equal(frame[y, x], palette[k]), (i, k, frame[y, x], palette[k])
            checked += 1
    assert checked >= 4 * 90  # four frames, every landmark but the skipped ones


def test_photo_identities_vary_and_severity_still_shows_in_movement() -> None:
    faces = [photo_face(s, PatientSpec(s, "pfed5", 0).identity) for s in range(12)]
    assert {f.name for f in faces} == set(PHOTOS) and {f.mirrored for f in faces} == {False, True}
    same = [f for f in faces if f.name == faces[0].name]
    assert not np.allclose(same[0].neutral, same[1].neutral)  # geometry varies per identity
    assert not np.array_equal(same[0].image.mean(axis=(0, 1)), same[1].image.mean(axis=(0, 1)))  # tone and grade
    widths = []
    for severity in (0.0, 4.0):
        ph = Phantom(PatientSpec(3, "pfed5", severity, reps=1, tasks=("smile",), appearance="photo", head_motion=0.0,
                                 nuisance=False), 320, 240, 12)  # fmt: skip
        lm = [ph.truth(i).landmarks for i in range(ph.n_frames)]
        w = [np.linalg.norm(p[52] - p[61]) / np.linalg.norm(p[38] - p[92]) for p in lm]
        widths.append(max(w) - min(w))
    assert widths[1] < 0.6 * widths[0], widths
    frame = ph.render(ph.n_frames // 2)
    assert frame.shape == (240, 320, 3) and frame.std() > 20  # a picture, not a blank
