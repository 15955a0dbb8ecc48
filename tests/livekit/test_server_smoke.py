"""The test infrastructure itself, with real WebRTC: a livekit-server (with Redis) inside a network
namespace, two Python participants exchanging a 440 Hz tone through it, the twirp API, and only
namespace addresses on the wire."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from tests.livekit.stack import LiveKitStack
from tests.netns import Namespace

SUBNET = ipaddress.ip_network("10.213.0.0/24")


def _in_subnet(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    return ipaddress.ip_address(host) in SUBNET


def test_namespace_is_isolated(netns: Namespace) -> None:
    out = netns.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    addrs = {line.split()[3] for line in out.splitlines()}
    assert addrs == {"127.0.0.1/8", "127.0.0.2/8", "10.213.0.1/24", "10.213.0.2/24"}
    routes = netns.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert "default" not in routes, routes


def test_server_answers_inside_namespace(livekit_stack: LiveKitStack, netns: Namespace) -> None:
    status, body = netns.http("GET", livekit_stack.http_url + "/")
    assert (status, body.strip()) == (200, "OK")
    # The keys are random and never written to the server's log.
    assert not livekit_stack.api_key.startswith("devkey")
    assert livekit_stack.api_secret not in livekit_stack.server.log()


def test_two_participants_exchange_audio(livekit_stack: LiveKitStack, ns_client: Any) -> None:
    room = f"smoke-{int(time.time() * 1000)}"
    started = time.monotonic()
    result = ns_client(
        "tests.livekit.clients.sine_pubsub",
        ["--room", room, "--seconds", "2"],
        env=livekit_stack.env(),
        timeout=40,
    )
    elapsed = time.monotonic() - started
    received = result["received"]
    print(f"client run {elapsed:.1f} s: connect {result['connect_s']} s, "
          f"first audio {result['first_audio_s']} s, {received}, ICE {result['ice']}")  # fmt: skip
    assert result["sent_frames"] == 100
    # ≥ 1.5 s of the 2 s tone arrived, loud, and still at 440 Hz after Opus.
    assert received["tone_seconds"] >= 1.5, received
    assert received["tone_rms"] > 3000, received  # sent at 0.4 full scale: RMS ≈ 9300
    assert abs(received["peak_hz"] - 440) < 5, received
    assert result["first_audio_s"] is not None and result["first_audio_s"] < 2.0
    # The server API saw the room with both participants while the tone played.
    assert room in result["room_service"]["rooms"], result["room_service"]
    assert result["room_service"]["participants"] == ["listener", "speaker"]
    # ICE: candidates and selected pairs only on the namespace's veth pair.
    for side in ("speaker", "listener"):
        ice = result["ice"][side]
        assert ice["selected"], f"{side}: no nominated candidate pair: {ice}"
        assert all(_in_subnet(c) for c in ice["candidates"]), ice
        for pair in ice["selected"]:
            assert all(_in_subnet(end) for end in pair.split(" -> ")), pair


def test_ns_process_runs_and_stops(ns_process: Any, netns: Namespace) -> None:
    """The long-running-process fixture: readiness from inside, HTTP via ``ns.http``, and stop()
    reaps the whole process group (here a shell and its child HTTP server)."""
    script = "python3 -m http.server 8765 --bind 10.213.0.1 & wait"
    proc = ns_process(["sh", "-c", script], name="http", ready_url="http://10.213.0.1:8765/")
    status, _ = netns.http("GET", "http://10.213.0.1:8765/")
    assert status == 200
    proc.stop(grace=0.5)  # sh exits on SIGTERM; its orphaned child goes with the process group
    time.sleep(0.2)
    assert not any("http.server 8765" in _cmdline(pid) for pid in netns.pids())


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
