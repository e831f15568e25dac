"""Imports follow the data flow (design.md §1): which first-party package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "phantom", "ingest", "tracker", "scorer", "dashboard", "fleet", "trainer", "infra")
LEAF_OK = {"common", "phantom"}
ALLOWED: dict[str, set[str]] = {
    "common": {"common"},
    "phantom": {"phantom", "common"},
    "ingest": {"ingest"} | LEAF_OK,
    "tracker": {"tracker"} | LEAF_OK,
    "scorer": {"scorer"} | LEAF_OK,
    "dashboard": {"dashboard"} | LEAF_OK,
    "fleet": {"fleet"} | LEAF_OK,  # fleet analytics: a service beside the dashboard (common.longitudinal is shared)
    "trainer": {"trainer", "tracker"} | LEAF_OK,
    "infra": set(PACKAGES),
}
# Third-party modules a package must not pull in (the live contracts stay light and torch-free).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "common": {"torch", "aiortc", "fastapi", "faust", "aiokafka"},
    "phantom": {"torch"},
    **{service: {"faust", "aiokafka"} for service in ("ingest", "tracker", "scorer", "dashboard")},  # optional extra
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for root in imported_roots(path):
            if root in PACKAGES and root not in ALLOWED[package]:
                bad.append(f"{path.relative_to(ROOT)} imports {root}")
            if root in FORBIDDEN_THIRD_PARTY.get(package, set()):
                bad.append(f"{path.relative_to(ROOT)} imports {root}")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_follow_the_flow(package: str) -> None:
    assert violations(package) == []


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import tracker.worker\nfrom dashboard import app\nfrom . import sibling\n")
    assert imported_roots(bad) == {"tracker", "dashboard"}
    assert "tracker" not in ALLOWED["scorer"] and "dashboard" not in ALLOWED["common"]


def test_only_the_bus_calls_stream_commands() -> None:
    offenders = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "common" / "bus.py":
                continue
            text = path.read_text()
            for call in (".xadd(", ".xreadgroup(", ".xack(", ".xautoclaim("):
                if call in text:
                    offenders.append(f"{path.relative_to(ROOT)} calls {call}")
    assert offenders == []
