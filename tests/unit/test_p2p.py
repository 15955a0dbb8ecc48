"""The embedded peer-to-peer runtime's offer check: what aiortc would accept but a voice call
cannot use is refused before any socket is opened. (Answering real offers is tested inside a
network namespace: tests/livekit/test_p2p_e2e.py.)"""

from __future__ import annotations

import pytest

from agents.webrtc.p2p import MAX_SDP_CHARS, BadOffer, _dry_run, check_offer

AUDIO_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 00:11\r\na=setup:actpass\r\na=rtcp-mux\r\n"
)


def test_an_offer_with_audio_passes() -> None:
    check_offer(AUDIO_OFFER, "offer")


@pytest.mark.parametrize(
    ("sdp", "type_", "message"),
    [
        (AUDIO_OFFER, "answer", "expected an SDP offer"),
        ("not sdp", "offer", "no audio"),
        ("", "offer", "no audio"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "offer", "no audio"),
        ("m=video 9 x 1\r\n", "offer", "not valid SDP"),
        ("v=0\r\n" + "a=x\r\n" * MAX_SDP_CHARS, "offer", "longer than"),
    ],
)
def test_unusable_offers_are_refused(sdp: str, type_: str, message: str) -> None:
    with pytest.raises(BadOffer, match=message):
        check_offer(sdp, type_)


async def test_aiortc_reads_the_offer_before_any_model_loads() -> None:
    """The dry run (setRemoteDescription only: no ICE gathering, no sockets) catches what the
    SDP parser lets through."""
    await _dry_run(AUDIO_OFFER, "offer")
    no_ice = "".join(line for line in AUDIO_OFFER.splitlines(True) if "ice-" not in line)
    with pytest.raises(BadOffer, match="ICE"):
        await _dry_run(no_ice, "offer")
    no_mux = AUDIO_OFFER.replace("a=rtcp-mux\r\n", "")
    with pytest.raises(BadOffer, match="RTCP mux"):
        await _dry_run(no_mux, "offer")
