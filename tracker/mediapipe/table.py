"""The fixed, versioned table from the 468-vertex mesh (plus the two iris centres) to the 106-point layout.

The table lives in ``tracker/mesh106.json``: for each of the 106 insightface points (in index order, named as in
:mod:`phantom.layout`) the mesh vertices it is built from, their weights (summing to 1), the rule it follows and
how well it matches (``good`` / ``approximate``). Vertex 468 is the image-left eye's iris centre, 469 the
image-right eye's (both from the iris model). Every point comes from MediaPipe's named outlines (face oval, eyes,
brows, lips, nose) where one exists, interpolated along the outline at a fixed fraction where the 106 layout has a
point between two vertices; fractions are measured on the corner-to-corner axis of the outline in a mean face
(two real portraits). A table free to pick any vertex fits positions slightly better but loses motion: outline
vertices move with the feature they outline.

Points without a good counterpart (``match: approximate``):

* the 33 jaw contour points (0-32): the mesh's face oval is a fixed set of vertices on the 3-D face surface, while
  insightface's contour is the visible jaw silhouette; they agree on a frontal face and part under yaw, and the
  upper contour points come from the oval at eye level (none is in TraMP's 63 points);
* the mouth corners 52 and 61: the mesh's outer-lip corners (61, 291), a few pixels from where insightface places
  the corner between both lips; they enter TraMP's 63 points twice each (bottom and upper lip regions), so a
  constant offset there shifts both lip regions' corner slots but not their motion;
* the nose sides 75/76 and 81/82 (nose_*_contour1/2): no outline covers the sides of the bridge, so these are
  vertices on the lateral dorsum (contour1: 0.8 of the way up from 196/419 to 122/351 since t2) and nasal wall;
  they are among TraMP's nose slots (rigid, little motion);
* the brow tips 43 and 101: no vertex marks where the brow hair ends (below).

Eye centres and pupils (34/38, 88/92) are both the iris centre (the phantom draws them at one spot; TraMP uses
the pupils 38 and 92). t2 (from t1) moved six of TraMP's points whose t1 offset had the same sign on both hand-marked
portraits and on cartoon faces of identities the benchmark does not use: nose contour1 75/81 up the bridge side, nose
contour4 78/84 and upper-lip contour1 63/67 inward along their outlines, and the brows' inner lower ends 46/97 half
way to the upper ends.

The brows were checked against the hand marks by eye (``benchmarks/landmarker.py --overlays DIR`` draws both on the
raw portraits). Both follow one convention, the upper and lower edge of the brow hair, and the marks sit on the
hair; where the mesh parts from them, the mesh is off. On every face, cartoon ones too, the mesh's brow outline runs
past the outer end of the hair (outward and down): t3 (from t2) puts the outer tips 43/101 half way along the brow
to the next pair of outline vertices, the fraction fitted on cartoon faces of 12 identities the benchmark does not
use (tip error 0.071 -> 0.033 and 0.063 -> 0.037 inter-ocular distances, IOD; the portraits move the same way,
0.02-0.06 IOD nearer). What remains is the mesh's: on the astronaut's thin, sharp brows its upper line lies about
0.03 IOD above the hair and its image-right brow begins 0.11-0.13 IOD nearer the nose than the hair (97/102); on
Grace Hopper's faint brows, just above a dark glasses rim, it pulls both outer halves down and out onto the rim
(43/44/48 and 100/101/105 still 0.09-0.16 IOD off). Neither recurs on the cartoon faces, so no table change follows
from them (it would fit the table to the two faces whose marks are the photo-real truth).

``version`` enters the landmarker identity (``mediapipe-facemesh/<version>``); any change to the table must bump it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from common.errors import ModelError
from phantom.layout import N_POINTS, NAMES

F32 = npt.NDArray[np.float32]
TABLE_FILE = Path(__file__).resolve().parent.parent / "mesh106.json"
N_SOURCES = 470  # 468 mesh vertices + 2 iris centres
IRIS_LEFT, IRIS_RIGHT = 468, 469
MATCHES = ("good", "approximate")


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    version: str
    matrix: F32  # [106, 470]: points = matrix @ sources
    match: tuple[str, ...]
    rules: tuple[str, ...]

    @property
    def identity(self) -> str:
        return f"mediapipe-facemesh/{self.version}"

    def apply(self, sources: F32) -> F32:
        """[..., 470, 2] mesh vertices + iris centres -> [..., 106, 2]."""
        return np.asarray(np.matmul(self.matrix, np.asarray(sources, dtype=np.float32)), dtype=np.float32)

    @functools.cached_property
    def _used(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], F32]:
        """The sources any point reads (mesh vertices, iris centres 0/1) and the matrix restricted to them."""
        cols = np.flatnonzero(np.abs(self.matrix).sum(axis=0) > 0)
        mesh, iris = cols[cols < IRIS_LEFT], cols[cols >= IRIS_LEFT] - IRIS_LEFT
        return mesh, iris, np.ascontiguousarray(self.matrix[:, np.concatenate([mesh, iris + IRIS_LEFT])])

    def from_mesh(self, vertices: F32, centres: F32) -> F32:
        """[106, 2] from one face's mesh [468, >=2] and iris centres [2, 2]: :meth:`apply` reading only the
        sources the table uses (116 of 470 in t3)."""
        mesh, iris, sub = self._used
        sources = np.concatenate([vertices[mesh, :2], np.asarray(centres, np.float32)[iris]], axis=0)
        return np.asarray(sub @ sources, dtype=np.float32)


def parse(doc: Any, source: str = "table") -> Table:
    """Validate a table document; raise :class:`ModelError` naming the first problem."""
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), str) or not doc["version"]:
        raise ModelError(f"{source}: no version string")
    points = doc.get("points")
    if not isinstance(points, list) or len(points) != N_POINTS:
        raise ModelError(f"{source}: needs {N_POINTS} points")
    matrix = np.zeros((N_POINTS, N_SOURCES), dtype=np.float64)
    match, rules = [], []
    for i, p in enumerate(points):
        if not isinstance(p, dict) or p.get("index") != i or p.get("name") != NAMES[i]:
            raise ModelError(f"{source}: point {i} must be {{index: {i}, name: {NAMES[i]!r}}}, got {p!r:.80}")
        verts, weights = p.get("vertices"), p.get("weights")
        if not isinstance(verts, list) or not isinstance(weights, list) or len(verts) != len(weights) or not verts:
            raise ModelError(f"{source}: point {i} needs equal, non-empty vertex and weight lists")
        if any(not isinstance(v, int) or not 0 <= v < N_SOURCES for v in verts) or len(set(verts)) != len(verts):
            raise ModelError(f"{source}: point {i} has a vertex outside 0..{N_SOURCES - 1} or a repeated one")
        w = np.asarray(weights, dtype=np.float64)
        if (w < 0).any() or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ModelError(f"{source}: point {i} weights must be >= 0 and sum to 1, got {weights}")
        if p.get("match") not in MATCHES:
            raise ModelError(f"{source}: point {i} match must be one of {MATCHES}")
        matrix[i, verts] = w
        match.append(str(p["match"]))
        rules.append(str(p.get("rule", "")))
    return Table(doc["version"], matrix.astype(np.float32), tuple(match), tuple(rules))


def load(path: Path = TABLE_FILE) -> Table:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the mesh-to-106 table {path}: {exc}") from exc
    return parse(doc, str(path))


@functools.cache
def default_table() -> Table:
    return load()
