// The tutor page: pick an agent, join, talk. State is mirrored into data-* attributes
// (body: data-call-state, data-agent-state, ...; captions: data-role, data-final) for tests.

import { Api, ApiError, loadKey, saveKey, type WebSession } from "./api";
import type { Link, LinkEvents } from "./link";
import { LevelMeter, openMicrophone } from "./media";
import { connectP2P } from "./p2p";
import {
  type AgentState,
  clientReady,
  Conversation,
  type Latency,
  type Role,
  type View,
} from "./rtvi";

type CallState = "idle" | "connecting" | "connected" | "ended";

const el = <T extends HTMLElement>(id: string): T => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`missing #${id}`);
  return found as T;
};

const ui = {
  status: el<HTMLParagraphElement>("status"),
  keyForm: el<HTMLFormElement>("key-form"),
  keyInput: el<HTMLInputElement>("api-key"),
  joinForm: el<HTMLFormElement>("join-form"),
  agent: el<HTMLSelectElement>("agent"),
  join: el<HTMLButtonElement>("join"),
  forgetKey: el<HTMLButtonElement>("forget-key"),
  hangup: el<HTMLButtonElement>("hangup"),
  agentState: el<HTMLSpanElement>("agent-state"),
  mic: el<HTMLDivElement>("mic-level"),
  captions: el<HTMLOListElement>("captions"),
  latencyLast: el<HTMLParagraphElement>("latency-last"),
  history: el<HTMLOListElement>("latency-history"),
  audio: el<HTMLAudioElement>("agent-audio"),
};
const body = document.body;
const query = new URLSearchParams(location.search);
const RAW_MIC = query.get("raw") === "1";
// ?debug=1 keeps the RTVI messages in window.tutorMessages (for tests and bug reports).
const DEBUG = query.get("debug") === "1";
const debugLog: unknown[] = [];
if (DEBUG) (window as unknown as { tutorMessages: unknown[] }).tutorMessages = debugLog;
const READY_RETRY_MS = 2000;
const READY_ATTEMPTS = 5;
// A level above this (0..1, log scale) counts as sound: -30 dBFS.
const HEARD = 0.5;

const STATE_TEXT: Record<AgentState, string> = {
  idle: "Not in a call",
  listening: "Listening",
  thinking: "Thinking…",
  speaking: "Speaking",
};

let api: Api | null = null;
let current: Call | null = null;

function say(text: string): void {
  ui.status.textContent = text;
}

function setCallState(state: CallState): void {
  body.dataset.callState = state;
  const busy = state === "connecting" || state === "connected";
  ui.join.disabled = busy || !ui.agent.value;
  ui.agent.disabled = busy;
  ui.hangup.disabled = !busy;
}

function fmt(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

const view: View = {
  caption(id: number, role: Role, text: string, final: boolean, interrupted: boolean): void {
    let li = ui.captions.querySelector<HTMLLIElement>(`li[data-caption="${id}"]`);
    if (!li) {
      li = document.createElement("li");
      li.dataset.caption = String(id);
      li.dataset.role = role;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = role === "user" ? "You" : "Tutor";
      const p = document.createElement("p");
      p.className = "text";
      li.append(who, p);
      ui.captions.append(li);
    }
    li.dataset.final = String(final);
    if (interrupted) li.dataset.interrupted = "true";
    const p = li.querySelector(".text");
    if (p) p.textContent = text;
    ui.captions.scrollTop = ui.captions.scrollHeight;
  },
  agentState(state: AgentState): void {
    body.dataset.agentState = state;
    ui.agentState.dataset.state = state;
    ui.agentState.textContent = STATE_TEXT[state];
  },
  latency(data: Latency, captionId: number | null): void {
    const summary = `${fmt(data.voice_to_voice_ms)} voice to voice`;
    const parts = `speech-to-text ${fmt(data.stt_ms)} · LLM ${fmt(data.llm_ms)} · TTS ${fmt(data.tts_ms)}`;
    ui.latencyLast.textContent = `Last turn: ${summary} (${parts})`;
    const li = document.createElement("li");
    li.dataset.turn = String(data.turn ?? "");
    li.dataset.voiceToVoiceMs = String(data.voice_to_voice_ms ?? "");
    li.textContent = `${summary} — ${parts}`;
    ui.history.prepend(li);
    while (ui.history.children.length > 20) ui.history.lastElementChild?.remove();
    const caption =
      captionId === null ? null : ui.captions.querySelector(`li[data-caption="${captionId}"]`);
    if (caption && !caption.querySelector(".latency")) {
      const badge = document.createElement("span");
      badge.className = "latency";
      badge.textContent = fmt(data.voice_to_voice_ms);
      badge.title = parts;
      caption.append(badge);
    }
  },
  botReady(): void {
    body.dataset.botReady = "true";
    if (body.dataset.callState === "connected") say("The tutor is here. Say hello!");
  },
  error(message: string): void {
    say(`The tutor reported a problem: ${message}`);
  },
};

function micError(err: unknown): string {
  const name = err instanceof DOMException ? err.name : "";
  if (name === "NotAllowedError")
    return "Microphone access was refused. Allow it for this page and try again.";
  if (name === "NotFoundError") return "No microphone was found.";
  return err instanceof Error ? err.message : String(err);
}

/** One call: microphone, transport link, meters, captions. */
class Call {
  private readonly ctx = new AudioContext(); // created in the click: allowed to play
  private readonly conversation = new Conversation(view);
  private mic: MediaStream | null = null;
  private link: Link | null = null;
  private meters: { mic?: LevelMeter; agent?: LevelMeter } = {};
  private timers: ReturnType<typeof setInterval>[] = [];
  private readyAttempts = 0;
  private over = false; // hanging up or ended: ignore late events
  private finished = false;

  constructor(private readonly api: Api) {}

  async start(agentId: string): Promise<void> {
    setCallState("connecting");
    say("Connecting…");
    void this.ctx.resume();
    try {
      this.mic = await openMicrophone(RAW_MIC).catch((err: unknown) => {
        throw new Error(micError(err));
      });
      this.meters.mic = new LevelMeter(this.ctx, this.mic);
      this.timers.push(setInterval(() => this.tick(), 100));
      const session = await this.api.startSession(agentId);
      body.dataset.callId = session.call_id;
      body.dataset.mode = session.mode;
      this.link = await this.connect(session);
      if (this.over) await this.link.hangup(); // hung up while connecting
    } catch (err) {
      const text = err instanceof ApiError || err instanceof Error ? err.message : String(err);
      this.end("error", `Could not start the call: ${text}`);
    }
  }

  private connect(session: WebSession): Promise<Link> {
    const events: LinkEvents = {
      connected: () => {
        if (this.over) return;
        setCallState("connected");
        this.conversation.start();
        say(
          body.dataset.botReady
            ? "The tutor is here. Say hello!"
            : "Connected. The tutor is on the way…",
        );
        ui.hangup.focus();
      },
      peerReady: () => this.sendReady(),
      message: (raw) => {
        if (DEBUG) debugLog.push(raw);
        this.conversation.handle(raw);
      },
      remoteAudio: (stream) => {
        if (ui.audio.srcObject !== stream && session.mode === "p2p") ui.audio.srcObject = stream;
        void ui.audio
          .play()
          .catch(() => say("Audio is blocked: click anywhere to hear the tutor."));
        this.meters.agent?.close();
        this.meters.agent = new LevelMeter(this.ctx, stream);
      },
      ended: (reason) => this.end(reason),
    };
    if (session.mode === "livekit") {
      return import("./livekit").then(({ connectLiveKit }) =>
        connectLiveKit(session.url, session.token, this.mic as MediaStream, ui.audio, events),
      );
    }
    return connectP2P(
      this.mic as MediaStream,
      (offer) => this.api.sendOffer(session.offer_url, offer),
      events,
    );
  }

  /** Pipecat answers client-ready with bot-ready. Over the P2P data channel the server queues
   * it until the pipeline runs; in a room, a message sent before the agent's pipeline listens
   * is lost, so it is repeated a few times until bot-ready comes. */
  private sendReady(): void {
    if (this.over || this.conversation.ready || this.readyAttempts >= READY_ATTEMPTS) return;
    if (!this.link) {
      setTimeout(() => this.sendReady(), 50); // still connecting: the link is not ours yet
      return;
    }
    this.readyAttempts += 1;
    this.link?.send(clientReady());
    if (body.dataset.mode === "livekit") setTimeout(() => this.sendReady(), READY_RETRY_MS);
  }

  private tick(): void {
    const mic = this.meters.mic?.level() ?? 0;
    ui.mic.style.setProperty("--level", mic.toFixed(3));
    ui.mic.setAttribute("aria-valuenow", String(Math.round(mic * 100)));
    if (mic > HEARD && !body.dataset.micHeard) body.dataset.micHeard = "true";
    const agent = this.meters.agent?.level() ?? 0;
    if (agent > HEARD && !body.dataset.agentHeard) body.dataset.agentHeard = "true";
  }

  async hangup(): Promise<void> {
    if (this.over) return;
    this.over = true;
    if (this.link) await this.link.hangup();
    else this.end("hangup");
  }

  end(reason: string, message?: string): void {
    this.over = true;
    if (this.finished) return;
    this.finished = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.meters.mic?.close();
    this.meters.agent?.close();
    this.mic?.getTracks().forEach((t) => t.stop());
    ui.audio.srcObject = null;
    void this.ctx.close().catch(() => undefined);
    this.conversation.stop();
    ui.mic.style.setProperty("--level", "0");
    body.dataset.endReason = reason;
    setCallState("ended");
    const why: Record<string, string> = {
      hangup: "You hung up.",
      agent_left: "The tutor ended the call.",
      network: "The connection was lost.",
    };
    say(message ?? `Call ended. ${why[reason] ?? ""}`.trim());
    if (current === this) current = null;
    ui.join.focus();
  }
}

async function loadAgents(key: string): Promise<void> {
  api = new Api(key);
  say("Loading tutors…");
  try {
    const agents = await api.agents();
    ui.agent.replaceChildren(
      ...agents.map((a) => {
        const opt = document.createElement("option");
        opt.value = a.id;
        opt.textContent = a.name;
        return opt;
      }),
    );
    const wanted = query.get("agent");
    if (wanted && agents.some((a) => a.id === wanted)) ui.agent.value = wanted;
    ui.keyForm.hidden = true;
    ui.joinForm.hidden = false;
    setCallState((body.dataset.callState as CallState) || "idle");
    body.dataset.agents = String(agents.length);
    say(
      agents.length
        ? "Pick a tutor and join."
        : "This organization has no agents yet: create one first.",
    );
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      saveKey(null);
      showKeyForm("That key was refused. Paste a valid API key.");
    } else {
      say(`Could not load tutors: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function showKeyForm(message: string): void {
  api = null;
  ui.joinForm.hidden = true;
  ui.keyForm.hidden = false;
  say(message);
  ui.keyInput.focus();
}

ui.keyForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  saveKey(key);
  ui.keyInput.value = "";
  void loadAgents(key);
});

ui.forgetKey.addEventListener("click", () => {
  saveKey(null);
  showKeyForm("Paste an API key to continue.");
});

ui.agent.addEventListener("change", () =>
  setCallState((body.dataset.callState as CallState) || "idle"),
);

ui.joinForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!api || current || !ui.agent.value) return;
  ui.captions.replaceChildren();
  delete body.dataset.endReason;
  delete body.dataset.botReady;
  delete body.dataset.micHeard;
  delete body.dataset.agentHeard;
  current = new Call(api);
  void current.start(ui.agent.value);
});

ui.hangup.addEventListener("click", () => void current?.hangup());

// Leaving the page ends the call now, not when the server's keep-alive times out.
window.addEventListener("pagehide", () => void current?.hangup());

// Some browsers block playback until a click: retry on the next one.
document.addEventListener("click", () => {
  if (ui.audio.srcObject && ui.audio.paused) void ui.audio.play().catch(() => undefined);
});

const key = loadKey();
setCallState("idle");
view.agentState("idle");
if (key) void loadAgents(key);
else showKeyForm("Paste an API key to continue (or open this page with #key=…).");
