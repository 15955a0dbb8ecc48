// What a call needs from its transport, whichever it is (LiveKit room or direct WebRTC).

export interface LinkEvents {
  /** Media is flowing. */
  connected(): void;
  /** The agent can receive our RTVI messages now (send client-ready). */
  peerReady(): void;
  /** An RTVI message from the agent (object or JSON text). */
  message(raw: unknown): void;
  /** The agent's voice. */
  remoteAudio(stream: MediaStream): void;
  /** The call is over (the agent left, the network failed, or we hung up). */
  ended(reason: string): void;
}

export interface Link {
  send(message: object): void;
  hangup(): Promise<void>;
}
