// The conversation model against RTVI message sequences as Pipecat 1.14 sends them
// (recorded from a real call: Piper TTS, Whisper STT, protocol 2.2.0).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type AgentState,
  clientReady,
  Conversation,
  type Latency,
  parseMessage,
  type Role,
} from "../src/rtvi";

interface Caption {
  role: Role;
  text: string;
  final: boolean;
  interrupted: boolean;
}

function harness() {
  const captions = new Map<number, Caption>();
  const states: AgentState[] = [];
  const latency: { data: Latency; caption: number | null }[] = [];
  let ready = false;
  const conv = new Conversation({
    caption: (id, role, text, final, interrupted) =>
      captions.set(id, { role, text, final, interrupted }),
    agentState: (s) => states.push(s),
    latency: (data, caption) => latency.push({ data, caption }),
    botReady: () => (ready = true),
    error: () => undefined,
  });
  const send = (type: string, data?: unknown) => conv.handle({ label: "rtvi-ai", type, data });
  return { conv, send, captions, states, latency, isReady: () => ready };
}

const sentence = (text: string, id: number, status: string) => ({
  text,
  output_type: "sentence",
  segment_id: id,
  will_be_spoken: true,
  spoken_status: status,
  spoken_progress:
    status === "completed"
      ? { accumulated_text: text, remaining_text: "" }
      : { accumulated_text: "", remaining_text: text },
});

test("client-ready announces the protocol version Pipecat speaks", () => {
  const m = clientReady();
  assert.equal(m.label, "rtvi-ai");
  assert.equal(m.type, "client-ready");
  assert.deepEqual((m.data as { version: string }).version, "2.2.0");
  assert.ok(m.id);
});

test("a greeting, a question and an answer", () => {
  const h = harness();
  h.conv.start();
  h.send("bot-ready", { version: "2.2.0" });
  assert.ok(h.isReady());
  // The greeting: shown (interim) as speaking starts, final once spoken and stopped.
  h.send("bot-started-speaking");
  h.send("bot-output", sentence("Hello, you are through to the clinic.", 67, "new"));
  assert.deepEqual(h.captions.get(1), {
    role: "agent",
    text: "Hello, you are through to the clinic.",
    final: false,
    interrupted: false,
  });
  h.send("bot-tts-stopped");
  h.send("bot-output", sentence("Hello, you are through to the clinic.", 67, "completed"));
  h.send("bot-tts-text", { text: "Hello, you are through to the clinic." }); // not shown twice
  h.send("bot-stopped-speaking");
  assert.deepEqual(h.captions.get(1)?.final, true);
  assert.equal(h.captions.get(1)?.text, "Hello, you are through to the clinic.");
  // The question: user-input and its deprecated twin user-transcription.
  h.send("user-started-speaking");
  h.send("user-input", { text: "How much", input_type: "transcription", final: false });
  h.send("user-transcription", { text: "How much", final: false });
  assert.deepEqual(h.captions.get(2), {
    role: "user",
    text: "How much",
    final: false,
    interrupted: false,
  });
  h.send("user-input", {
    text: "How much does a check-up cost?",
    input_type: "transcription",
    final: true,
  });
  h.send("user-transcription", { text: "How much does a check-up cost?", final: true });
  h.send("user-stopped-speaking");
  assert.deepEqual(h.captions.get(2), {
    role: "user",
    text: "How much does a check-up cost?",
    final: true,
    interrupted: false,
  });
  // The answer in two sentences, then its latency.
  h.send("bot-llm-started");
  h.send("bot-started-speaking");
  h.send("bot-output", sentence("A check-up costs eighty dollars.", 80, "new"));
  h.send("bot-output", sentence("A check-up costs eighty dollars.", 80, "completed"));
  h.send("bot-output", sentence("Anything else?", 81, "new"));
  assert.equal(h.captions.get(3)?.text, "A check-up costs eighty dollars. Anything else?");
  h.send("bot-output", sentence("Anything else?", 81, "completed"));
  h.send("bot-stopped-speaking");
  assert.equal(h.captions.get(3)?.final, true);
  h.send("server-message", {
    type: "latency",
    turn: 3,
    voice_to_voice_ms: 1040,
    stt_ms: 310,
    llm_ms: 280,
    tts_ms: 250,
  });
  assert.deepEqual(h.latency, [
    {
      data: {
        type: "latency",
        turn: 3,
        voice_to_voice_ms: 1040,
        stt_ms: 310,
        llm_ms: 280,
        tts_ms: 250,
      },
      caption: 3,
    },
  ]);
  assert.deepEqual(h.states, [
    "listening",
    "speaking",
    "listening",
    "thinking",
    "speaking",
    "listening",
  ]);
  assert.equal(h.captions.size, 3);
});

test("a barge-in closes the agent's caption as interrupted", () => {
  const h = harness();
  h.conv.start();
  h.send("bot-started-speaking");
  h.send("bot-output", sentence("Our clinic offers many services.", 5, "new"));
  h.send("user-started-speaking");
  h.send("bot-interrupted");
  h.send("bot-stopped-speaking");
  assert.deepEqual(h.captions.get(1), {
    role: "agent",
    text: "Our clinic offers many services.",
    final: true,
    interrupted: true,
  });
  h.send("user-input", { text: "Stop.", input_type: "transcription", final: true });
  assert.equal(h.captions.get(2)?.role, "user");
  // The next reply is a new caption, not a continuation of the interrupted one.
  h.send("bot-started-speaking");
  h.send("bot-output", sentence("Sure.", 6, "new"));
  assert.equal(h.captions.get(3)?.text, "Sure.");
  assert.equal(h.captions.get(3)?.interrupted, false);
});

test("word-timestamp TTS: progress replaces the announced sentence", () => {
  const h = harness();
  h.send("bot-output", sentence("One two three.", 9, "new"));
  h.send("bot-output", {
    ...sentence("two", 9, "in-progress"),
    spoken_progress: { accumulated_text: "One two", remaining_text: "three." },
  });
  assert.equal(h.captions.get(1)?.text, "One two");
  h.send("bot-output", {
    ...sentence("three.", 9, "completed"),
    spoken_progress: { accumulated_text: "One two three.", remaining_text: "" },
  });
  assert.equal(h.captions.get(1)?.text, "One two three.");
});

test("without bot-output, bot-tts-text is the agent's caption; junk is ignored", () => {
  const h = harness();
  h.send("bot-tts-text", { text: "Hello." });
  h.send("bot-tts-text", { text: "How are you?" });
  assert.equal(h.captions.get(1)?.text, "Hello. How are you?");
  h.conv.handle("not json");
  h.conv.handle({ type: "bot-output" }); // no RTVI label
  h.conv.handle(null);
  assert.equal(parseMessage('{"label":"rtvi-ai","type":"x"}')?.type, "x");
  assert.equal(parseMessage('{"label":"other","type":"x"}'), null);
  assert.equal(h.captions.size, 1);
});

test("an interim user caption left without a final is kept when the agent answers", () => {
  const h = harness();
  h.send("user-transcription", { text: "hello there", final: false });
  h.send("bot-started-speaking");
  assert.deepEqual(h.captions.get(1), {
    role: "user",
    text: "hello there",
    final: true,
    interrupted: false,
  });
});
