"""Synthetic patients on session creation: accepted only where the deployment says so, and bounded.

A phantom spec (phantom.spec.PatientSpec JSON) makes the tracker build the whole performance for its ground truth,
so a spec is work ordered by the caller. It is refused unless ``FEQA_INGEST_ALLOW_PHANTOM`` is on (demo and test
deployments), and then only when it parses, names the session's protocol, keeps its seeds in range, asks for at most
``phantom_max_reps`` repetitions and lasts at most ``phantom_max_s`` at the session's frame rate. What is stored is
the spec re-serialised from the parsed object, never the caller's text.
"""

from __future__ import annotations

from common.errors import PermanentError
from phantom.script import build_script
from phantom.spec import PatientSpec

MAX_SPEC_CHARS = 2048
MAX_SEED = 2**32


class PhantomRefused(PermanentError):
    """The phantom spec is not accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def checked_phantom(text: str, protocol: str, fps: float, *, allowed: bool, max_reps: int, max_s: float) -> str:
    """The spec to store for a session, or :class:`PhantomRefused` saying why not."""
    if not allowed:
        raise PhantomRefused(
            "this ingest does not accept phantom (synthetic) patients; demo and test deployments turn them on with "
            "FEQA_INGEST_ALLOW_PHANTOM=true",
            403,
        )
    if len(text) > MAX_SPEC_CHARS:
        raise PhantomRefused(f"the phantom spec is longer than {MAX_SPEC_CHARS} characters")
    try:
        spec = PatientSpec.from_json(text)
    except (ValueError, OverflowError) as exc:
        raise PhantomRefused(f"bad phantom spec: {str(exc)[:120]}") from None
    if spec.protocol != protocol:
        raise PhantomRefused(f"the phantom spec is for protocol {spec.protocol}, the session for {protocol}")
    seeds = [spec.seed] + ([] if spec.identity_seed is None else [spec.identity_seed])
    if any(not 0 <= s < MAX_SEED for s in seeds):
        raise PhantomRefused(f"phantom seeds must lie in [0, {MAX_SEED})")
    if spec.reps > max_reps:
        raise PhantomRefused(f"a phantom may repeat each task at most {max_reps} times, not {spec.reps}")
    seconds = build_script(spec, fps).n_frames / fps
    if seconds > max_s:
        raise PhantomRefused(f"the phantom's performance lasts {seconds:.0f} s; the limit is {max_s:.0f} s")
    return spec.to_json()
