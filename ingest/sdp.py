"""Checks on a browser's SDP offer before aiortc sees it: size, shape, and that it carries video."""

from __future__ import annotations

from common.errors import PermanentError


class OfferError(PermanentError):
    """The offer is refused; the message tells the caller why."""


def check_offer(sdp: object, sdp_type: object, max_bytes: int) -> str:
    """Return the offer's text, or raise :class:`OfferError` with a clear reason."""
    if sdp_type != "offer":
        raise OfferError(f"expected an SDP of type 'offer', got {sdp_type!r}")
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError("the offer has no SDP text")
    size = len(sdp.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise OfferError(f"the SDP offer is {size} bytes; the limit is {max_bytes}")
    lines = [line.strip() for line in sdp.splitlines() if line.strip()]
    if not lines or lines[0] != "v=0":
        raise OfferError("malformed SDP: it must start with 'v=0'")
    bad = [line for line in lines if len(line) < 2 or line[1] != "=" or not line[0].isalpha()]
    if bad:
        raise OfferError(f"malformed SDP line {bad[0][:60]!r}")
    media = [line for line in lines if line.startswith("m=")]
    video = [line for line in media if line.startswith("m=video ")]
    if not video:
        raise OfferError("the offer has no video: share the camera and try again")
    if all(line.split()[1:2] == ["0"] for line in video):
        raise OfferError("the offer's video section is disabled (port 0)")
    return sdp
