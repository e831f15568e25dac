"""The model registry: finds, validates and serves ``models/<protocol>/<task>/<version>/`` artifacts.

- **Layout**: ``<root>/<protocol>/<task>/<version>/manifest.json`` plus the graph files it names
  (design.md §5; ``common.protocols.model_key`` gives ``<protocol>/<task>``).
- **Validation** (all must hold, else the version is refused with one clear log line naming the folder and why):
  the manifest parses and its schema and feature versions are this code's (``Manifest.check_compatible``); its
  protocol, task and version match the folder; the protocol and task exist; it records the landmarker its training
  data came from; its calibration clamps to the protocol's label scale; every graph file exists and matches its
  sha256; the family (:mod:`scorer.families`) loads the graphs, finds the inputs and outputs the manifest promises and
  gets finite outputs from a neutral input.
- **Choice**: per protocol/task the newest valid version wins (versions compare as natural text: ``10`` > ``9`` >
  ``2b``); a refused newer version leaves the previous one serving.
- **Hot reload**: :meth:`ModelRegistry.scan` (polled every ``models_poll_s``) re-checks only folders whose files
  changed (names, sizes, modification times), so a new version dropped in is served without a restart, a corrupt one
  is refused once (and again only after it changes), and a removed one stops being served.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from pathlib import Path

from common.errors import FeqaError, ModelError
from common.manifest import MANIFEST_FILE, Manifest
from common.protocols import get_protocol, model_key
from scorer.backends import BackendChoice
from scorer.families import ScoringModel, load_model

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedModel:
    """One served artifact."""

    key: str  # "<protocol>/<task>"
    version: str
    folder: Path
    model: ScoringModel

    @property
    def manifest(self) -> Manifest:
        return self.model.manifest

    @property
    def name(self) -> str:
        """What a score names as its model: ``<family>:<protocol>/<task>``."""
        return f"{self.manifest.family}:{self.key}"

    @property
    def uid(self) -> str:
        """Identity of this loaded version (frame features are cached per uid)."""
        return f"{self.key}@{self.version}#{id(self)}"


@dataclasses.dataclass(frozen=True)
class Refusal:
    folder: Path
    reason: str


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key comparing digit runs as numbers: "2" < "10", "v9" < "v10"."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", text))


def _fingerprint(folder: Path) -> Fingerprint:
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            out.append((p.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def validate_manifest(folder: Path, protocol: str, task: str) -> Manifest:
    """Every check of the module docstring that needs no graph loaded; :class:`ModelError` says what is wrong."""
    manifest = Manifest.read(folder)
    manifest.check_compatible()
    if (manifest.protocol, manifest.task) != (protocol, task):
        raise ModelError(f"manifest is for {manifest.protocol}/{manifest.task} but lies in {protocol}/{task}")
    if manifest.version != folder.name:
        raise ModelError(f"manifest version {manifest.version!r} differs from its folder name {folder.name!r}")
    try:
        model_key(protocol, task)
    except FeqaError as exc:
        raise ModelError(str(exc)) from exc
    if not manifest.landmarker:
        raise ModelError("manifest does not record the landmarker its training data came from; re-export it")
    scale = get_protocol(protocol).scale
    cal = manifest.calibration
    if (cal.clamp_min, cal.clamp_max) != (scale.min, scale.max):
        raise ModelError(
            f"calibration clamps to [{cal.clamp_min:g}, {cal.clamp_max:g}] but {protocol}'s scale is {scale.label}"
        )
    for key, graph in manifest.graphs.items():
        path = folder / graph.file
        if not path.is_file():
            raise ModelError(f"graph {key!r} file {graph.file} is missing")
        if graph.sha256 and _sha256(path) != graph.sha256:
            raise ModelError(f"graph {key!r} file {graph.file} does not match its sha256 (corrupt or half-written)")
    return manifest


class ModelRegistry:
    """Serves the newest valid version per protocol/task under ``root``; :meth:`scan` is safe to call from a worker
    thread while :meth:`get` is read on the event loop."""

    def __init__(self, root: Path, choice: BackendChoice) -> None:
        self.root = Path(root)
        self.choice = choice
        self._serving: dict[str, LoadedModel] = {}
        self._loaded: dict[Path, tuple[Fingerprint, LoadedModel]] = {}
        self._refused: dict[Path, tuple[Fingerprint, str]] = {}
        self._lock = threading.Lock()
        self._warned_missing = False

    def get(self, protocol: str, task: str) -> LoadedModel | None:
        return self._serving.get(f"{protocol}/{task}")

    @property
    def serving(self) -> dict[str, LoadedModel]:
        return dict(self._serving)

    @property
    def refused(self) -> list[Refusal]:
        return [Refusal(folder, reason) for folder, (_, reason) in sorted(self._refused.items())]

    def scan(self) -> dict[str, LoadedModel]:
        """Look at the tree once; load what is new or changed; return what is served now."""
        with self._lock:
            versions = self._version_folders()
            present = {folder for folder, _, _ in versions}
            for gone in [f for f in self._loaded if f not in present]:
                log.info("model %s was removed; no longer served", gone)
                del self._loaded[gone]
            for gone in [f for f in self._refused if f not in present]:
                del self._refused[gone]
            for folder, protocol, task in versions:
                self._check(folder, protocol, task)
            serving: dict[str, LoadedModel] = {}
            for loaded in sorted((lm for _, lm in self._loaded.values()), key=lambda m: natural_key(m.version)):
                serving[loaded.key] = loaded  # the newest version of each key comes last and wins
            for key, model in serving.items():
                old = self._serving.get(key)
                if old is not model:
                    log.info("serving %s version %s from %s (%s)", model.name, model.version, model.folder,
                             model.model.window.description)  # fmt: skip
            for key in set(self._serving) - set(serving):
                log.warning("no valid model left for %s: its windows are withheld as no_model", key)
            self._serving = serving
            return dict(serving)

    def _version_folders(self) -> list[tuple[Path, str, str]]:
        if not self.root.is_dir():
            if not self._warned_missing:
                log.info("models directory %s does not exist yet: no model is served (windows get kinematics only)",
                         self.root)  # fmt: skip
                self._warned_missing = True
            return []
        out = []
        for protocol_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for task_dir in sorted(p for p in protocol_dir.iterdir() if p.is_dir()):
                for version_dir in sorted(p for p in task_dir.iterdir() if p.is_dir()):
                    # the manifest is written last (trainer/export.py): a folder without one is still being written
                    if (version_dir / MANIFEST_FILE).exists():
                        out.append((version_dir, protocol_dir.name, task_dir.name))
        return out

    def _check(self, folder: Path, protocol: str, task: str) -> None:
        try:
            fp = _fingerprint(folder)
        except OSError:
            return  # removed while scanning
        if folder in self._loaded and self._loaded[folder][0] == fp:
            return
        if folder in self._refused and self._refused[folder][0] == fp:
            return
        self._loaded.pop(folder, None)
        try:
            manifest = validate_manifest(folder, protocol, task)
            model = load_model(manifest, folder, self.choice)
        except FeqaError as exc:
            self._refused[folder] = (fp, str(exc))
            log.error("refusing model %s: %s", folder, exc)
            return
        self._refused.pop(folder, None)
        self._loaded[folder] = (fp, LoadedModel(f"{protocol}/{task}", folder.name, folder, model))
