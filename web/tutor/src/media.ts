// Microphone capture and audio level meters (Web Audio AnalyserNode).

/** `?raw=1` turns off the browser's voice processing: echo cancellation and noise
 * suppression flatten a synthetic test voice (a fake microphone fed from a WAV file). */
export function micConstraints(raw: boolean): MediaStreamConstraints {
  const processing = !raw;
  return {
    audio: {
      channelCount: 1,
      echoCancellation: processing,
      noiseSuppression: processing,
      autoGainControl: processing,
    },
    video: false,
  };
}

export async function openMicrophone(raw: boolean): Promise<MediaStream> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("this page needs a secure context (https or localhost) for the microphone");
  }
  return navigator.mediaDevices.getUserMedia(micConstraints(raw));
}

/** RMS level of a stream, 0..1, sampled on demand. */
export class LevelMeter {
  private readonly analyser: AnalyserNode;
  private readonly source: MediaStreamAudioSourceNode;
  private readonly buf: Float32Array<ArrayBuffer>;

  constructor(ctx: AudioContext, stream: MediaStream) {
    this.source = ctx.createMediaStreamSource(stream);
    this.analyser = ctx.createAnalyser();
    this.analyser.fftSize = 1024;
    this.buf = new Float32Array(this.analyser.fftSize);
    // Analysed only, never routed to the speakers (the <audio> element plays the agent).
    this.source.connect(this.analyser);
  }

  level(): number {
    this.analyser.getFloatTimeDomainData(this.buf);
    let sum = 0;
    for (const v of this.buf) sum += v * v;
    const rms = Math.sqrt(sum / this.buf.length);
    // Speech RMS is ~0.01-0.3: a log scale makes the bar move for normal voices.
    const db = 20 * Math.log10(rms + 1e-9);
    return Math.min(1, Math.max(0, (db + 60) / 60));
  }

  close(): void {
    this.source.disconnect();
  }
}
