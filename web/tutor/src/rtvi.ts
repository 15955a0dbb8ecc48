// The RTVI protocol as Pipecat 1.14 speaks it (pipecat/processors/frameworks/rtvi): turns the
// server's messages into captions, the agent's state and per-turn latency for the view.

export const RTVI_LABEL = "rtvi-ai";
// Pipecat's RTVI.PROTOCOL_VERSION; announcing it gets the v2 `bot-output` format.
export const RTVI_VERSION = "2.2.0";

export type Role = "user" | "agent";
export type AgentState = "idle" | "listening" | "thinking" | "speaking";

export interface RtviMessage {
  label: string;
  type: string;
  id?: string;
  data?: unknown;
}

export interface Latency {
  turn?: number;
  voice_to_voice_ms: number | null;
  stt_ms: number | null;
  llm_ms: number | null;
  tts_ms: number | null;
}

/** What the conversation model asks of the page. */
export interface View {
  /** Create or update caption `id` (ids grow; a new id is a new turn). `interrupted`: the
   * user cut the agent off (its text may run ahead of what was heard). */
  caption(id: number, role: Role, text: string, final: boolean, interrupted: boolean): void;
  agentState(state: AgentState): void;
  /** `captionId`: the agent caption it belongs to, if any. */
  latency(data: Latency, captionId: number | null): void;
  botReady(): void;
  error(message: string): void;
}

let counter = 0;
function messageId(): string {
  counter += 1;
  return `${Date.now().toString(36)}-${counter}`;
}

export function clientReady(): RtviMessage {
  return {
    label: RTVI_LABEL,
    type: "client-ready",
    id: messageId(),
    data: {
      version: RTVI_VERSION,
      about: { library: "parley-tutor", library_version: "0.1.0", platform: "browser" },
    },
  };
}

export function parseMessage(raw: unknown): RtviMessage | null {
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      return null;
    }
  }
  if (typeof value !== "object" || value === null) return null;
  const m = value as Partial<RtviMessage>;
  if (m.label !== RTVI_LABEL || typeof m.type !== "string") return null;
  return m as RtviMessage;
}

type Data = Record<string, unknown>;

function asData(d: unknown): Data {
  return typeof d === "object" && d !== null ? (d as Data) : {};
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function join(a: string, b: string): string {
  if (!a) return b.trim();
  if (!b) return a.trim();
  return `${a.trim()} ${b.trim()}`;
}

interface Turn {
  id: number;
  role: Role;
  open: boolean;
}

/** Captions and state for one call, from the RTVI messages in the order they arrive. */
export class Conversation {
  private nextId = 1;
  private turn: Turn | null = null;
  private lastAgentId: number | null = null;
  // User turn: finals so far, and the interim tail that replaces itself.
  private userFinal = "";
  private userInterim = "";
  // Agent turn: text per segment (sentence), in speaking order; done once fully spoken.
  private segments = new Map<string, { text: string; done: boolean }>();
  private agentStopped = false;
  private interrupted = false;
  private sawUserInput = false;
  private sawBotOutput = false;
  private state: AgentState = "idle";
  ready = false;

  constructor(private readonly view: View) {}

  start(): void {
    this.setState("listening");
  }

  stop(): void {
    this.closeTurn();
    this.setState("idle");
  }

  handle(raw: unknown): void {
    const msg = parseMessage(raw);
    if (!msg) return;
    const d = asData(msg.data);
    switch (msg.type) {
      case "bot-ready":
        this.ready = true;
        this.view.botReady();
        break;
      case "user-started-speaking":
        // A barge-in ends the agent's turn even if it was cut off mid-sentence.
        if (this.turn?.role === "agent") this.closeTurn();
        this.setState("listening");
        break;
      case "user-stopped-speaking":
        this.setState("thinking");
        break;
      case "bot-llm-started":
        if (this.state !== "speaking") this.setState("thinking");
        break;
      case "bot-started-speaking":
        if (this.turn?.role === "user") this.closeTurn();
        this.setState("speaking");
        break;
      case "bot-stopped-speaking":
        if (this.turn?.role === "agent") {
          this.agentStopped = true;
          this.show(this.turn);
        }
        this.setState("listening");
        break;
      case "bot-interrupted":
        if (this.turn?.role === "agent") {
          this.interrupted = true;
          this.closeTurn();
        }
        this.setState("listening");
        break;
      case "user-input":
        // The newer message; when present, the deprecated user-transcription repeats it.
        this.sawUserInput = true;
        if (d.input_type !== "backchannel") this.userText(str(d.text), d.final !== false);
        break;
      case "user-transcription":
        if (!this.sawUserInput) this.userText(str(d.text), d.final !== false);
        break;
      case "bot-output":
        this.sawBotOutput = true;
        this.botOutput(d);
        break;
      case "bot-tts-text":
        // Deprecated twin of bot-output; only used if the server sends no bot-output.
        if (!this.sawBotOutput) this.agentText(`tts-${this.segments.size}`, str(d.text), true);
        break;
      case "server-message":
        if (d.type === "latency") this.view.latency(d as unknown as Latency, this.lastAgentId);
        break;
      case "error":
        this.view.error(str(d.error) || "the agent reported an error");
        break;
      default:
        break; // metrics, bot-llm-text, ... are not shown
    }
  }

  private setState(state: AgentState): void {
    if (state === this.state) return;
    this.state = state;
    this.view.agentState(state);
  }

  private open(role: Role): Turn {
    if (this.turn && this.turn.role === role && this.turn.open) return this.turn;
    this.closeTurn();
    this.turn = { id: this.nextId++, role, open: true };
    if (role === "user") {
      this.userFinal = "";
      this.userInterim = "";
    } else {
      this.segments = new Map();
      this.agentStopped = false;
      this.interrupted = false;
      this.lastAgentId = this.turn.id;
    }
    return this.turn;
  }

  private closeTurn(): void {
    const t = this.turn;
    if (!t || !t.open) return;
    if (t.role === "user" && this.userInterim) {
      // No final came for the tail: keep what was heard, marked final.
      this.userFinal = join(this.userFinal, this.userInterim);
      this.userInterim = "";
    }
    t.open = false;
    this.show(t);
  }

  private userText(text: string, final: boolean): void {
    if (!text.trim()) return;
    const t = this.open("user");
    if (final) {
      this.userFinal = join(this.userFinal, text);
      this.userInterim = "";
    } else {
      this.userInterim = text;
    }
    this.show(t);
  }

  // Pipecat sends a sentence's text as "new" when the agent starts speaking it (or, for TTS
  // with word timestamps, before: then "in-progress" words follow) and "completed" once spoken.
  private botOutput(d: Data): void {
    const key = d.segment_id === undefined || d.segment_id === null ? null : String(d.segment_id);
    const status = str(d.spoken_status);
    const progress = asData(d.spoken_progress);
    const text = str(progress.accumulated_text) || str(d.text);
    let done: boolean;
    if (status === "new") done = d.will_be_spoken === false;
    else if (status === "in-progress") done = false;
    else done = status === "completed" || d.spoken === true;
    const id = key ?? `seg-${this.segments.size}`;
    if (status === "new" && this.segments.has(id)) return; // progress already under way
    this.agentText(id, status === "new" ? str(d.text) : text, done);
  }

  private agentText(segment: string, text: string, done: boolean): void {
    if (!text.trim()) return;
    const t = this.open("agent");
    this.segments.set(segment, { text: text.trim(), done });
    if (!done) this.agentStopped = false;
    this.show(t);
  }

  private show(t: Turn): void {
    if (t.role === "user") {
      const text = join(this.userFinal, this.userInterim);
      if (text) this.view.caption(t.id, "user", text, !this.userInterim, false);
    } else {
      const segs = [...this.segments.values()];
      const text = segs.map((x) => x.text).join(" ");
      const final = !t.open || (this.agentStopped && segs.every((x) => x.done));
      if (text) this.view.caption(t.id, "agent", text, final, this.interrupted);
    }
  }
}
