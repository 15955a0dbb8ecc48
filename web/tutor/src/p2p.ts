// Embedded mode: WebRTC straight to the API process (Pipecat's SmallWebRTC transport).

import type { Answer } from "./api";
import type { Link, LinkEvents } from "./link";

// Pipecat counts a peer as connected only while it sends "ping..." text over the data
// channel at least every 3 s (SmallWebRTCConnection.is_connected); this also lets it notice
// a closed page quickly instead of after ICE consent expires (~30 s).
const PING_MS = 1000;
const ICE_GATHER_TIMEOUT_MS = 5000;
// "disconnected" can recover by itself; give it this long before giving up.
const DISCONNECT_GRACE_MS = 5000;

function iceGatheringComplete(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    // Without STUN/TURN servers gathering is quick; never wait forever on a slow interface.
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, ICE_GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

export async function connectP2P(
  mic: MediaStream,
  sendOffer: (offer: { sdp: string; type: string }) => Promise<Answer>,
  on: LinkEvents,
): Promise<Link> {
  // No ICE servers: host candidates only (the API is reachable directly, or not at all).
  const pc = new RTCPeerConnection({ iceServers: [] });
  // Created before the offer so it is negotiated in it; Pipecat's RTVI runs over it.
  const channel = pc.createDataChannel("rtvi", { ordered: true });
  for (const track of mic.getAudioTracks()) {
    pc.addTransceiver(track, { direction: "sendrecv", streams: [mic] });
  }

  let ended = false;
  let ping: ReturnType<typeof setInterval> | undefined;
  let grace: ReturnType<typeof setTimeout> | undefined;

  const finish = (reason: string): void => {
    if (ended) return;
    ended = true;
    clearInterval(ping);
    clearTimeout(grace);
    try {
      channel.close();
    } catch {
      /* already closed */
    }
    pc.close();
    on.ended(reason);
  };

  pc.addEventListener("track", (ev) => {
    if (ev.track.kind === "audio") on.remoteAudio(ev.streams[0] ?? new MediaStream([ev.track]));
  });
  pc.addEventListener("connectionstatechange", () => {
    switch (pc.connectionState) {
      case "connected":
        clearTimeout(grace);
        on.connected();
        break;
      case "disconnected":
        grace = setTimeout(() => finish("network"), DISCONNECT_GRACE_MS);
        break;
      case "failed":
        finish("network");
        break;
      default:
        break;
    }
  });
  channel.addEventListener("open", () => {
    ping = setInterval(() => {
      if (channel.readyState === "open") channel.send(`ping: ${Date.now()}`);
    }, PING_MS);
    on.peerReady();
  });
  channel.addEventListener("close", () => finish("agent_left"));
  channel.addEventListener("message", (ev: MessageEvent) => {
    if (typeof ev.data !== "string") return;
    let msg: { type?: string; message?: { type?: string } };
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (msg.type === "signalling") {
      // The server closes its side with {"type":"signalling","message":{"type":"peerLeft"}}.
      if (msg.message?.type === "peerLeft") finish("agent_left");
      return;
    }
    on.message(msg);
  });

  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    // Non-trickle: the offer carries every candidate (the API has no trickle endpoint).
    await iceGatheringComplete(pc);
    const local = pc.localDescription;
    if (!local) throw new Error("the browser produced no offer");
    const answer = await sendOffer({ sdp: local.sdp, type: local.type });
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  } catch (err) {
    ended = true;
    pc.close();
    throw err;
  }

  return {
    send(message: object): void {
      if (channel.readyState === "open") channel.send(JSON.stringify(message));
    },
    async hangup(): Promise<void> {
      finish("hangup");
    },
  };
}
