// LiveKit mode: join the room the API made; the agent worker is dispatched into it.
// Loaded on demand (a separate chunk), so the embedded mode never downloads the client.

import {
  DisconnectReason,
  type RemoteParticipant,
  type RemoteTrack,
  Room,
  RoomEvent,
  Track,
} from "livekit-client";

import type { Link, LinkEvents } from "./link";

export async function connectLiveKit(
  url: string,
  token: string,
  mic: MediaStream,
  audioEl: HTMLAudioElement,
  on: LinkEvents,
): Promise<Link> {
  const room = new Room({ adaptiveStream: false, dynacast: false, disconnectOnPageLeave: true });
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let ended = false;
  let hungUp = false;

  const finish = (reason: string): void => {
    if (ended) return;
    ended = true;
    on.ended(reason);
    void room.disconnect();
  };

  room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
    if (track.kind !== Track.Kind.Audio) return;
    track.attach(audioEl);
    on.remoteAudio(new MediaStream([track.mediaStreamTrack]));
  });
  room.on(RoomEvent.DataReceived, (payload: Uint8Array) => {
    on.message(decoder.decode(payload));
  });
  room.on(RoomEvent.ParticipantConnected, () => on.peerReady());
  room.on(RoomEvent.ParticipantDisconnected, (_p: RemoteParticipant) => {
    // A tutor room is one student and one agent: when the agent is gone, so is the call.
    if (room.remoteParticipants.size === 0) finish("agent_left");
  });
  room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
    if (hungUp) finish("hangup");
    else if (reason === DisconnectReason.ROOM_DELETED) finish("agent_left");
    else finish("network");
  });

  await room.connect(url, token, { autoSubscribe: true });
  try {
    for (const track of mic.getAudioTracks()) {
      await room.localParticipant.publishTrack(track, {
        source: Track.Source.Microphone,
        name: "microphone",
      });
    }
  } catch (err) {
    ended = true;
    await room.disconnect();
    throw err;
  }
  on.connected();
  // Unlocks audio playback if the browser still needs a gesture (Join was one).
  void room.startAudio();
  if (room.remoteParticipants.size > 0) on.peerReady();

  return {
    send(message: object): void {
      if (ended) return;
      void room.localParticipant
        .publishData(encoder.encode(JSON.stringify(message)), { reliable: true })
        .catch(() => undefined);
    },
    async hangup(): Promise<void> {
      hungUp = true;
      await room.disconnect();
      finish("hangup");
    },
  };
}
