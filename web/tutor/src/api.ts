// The Parley API as the page uses it: the key, agents, web sessions and the P2P offer.

const KEY_STORAGE = "parley.tutor.key";

/** Takes `#key=...` from the address (then removes it, so it is not bookmarked or shared)
 * into sessionStorage; returns the stored key, if any. */
export function loadKey(): string | null {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromHash = params.get("key");
  if (fromHash) {
    sessionStorage.setItem(KEY_STORAGE, fromHash.trim());
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_STORAGE);
}

export function saveKey(key: string | null): void {
  if (key) sessionStorage.setItem(KEY_STORAGE, key.trim());
  else sessionStorage.removeItem(KEY_STORAGE);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Agent {
  id: string;
  name: string;
}

export type WebSession =
  | {
      call_id: string;
      mode: "livekit";
      room: string;
      url: string;
      token: string;
      expires_at: string;
    }
  | { call_id: string; mode: "p2p"; offer_url: string };

export interface Answer {
  sdp: string;
  type: RTCSdpType;
  pc_id?: string;
}

export class Api {
  constructor(private readonly key: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp: Response;
    try {
      resp = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "the API did not answer; is the server running?");
    }
    const text = await resp.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!resp.ok) {
      // The API's one error shape: {"error": {"code", "message", ...}}
      const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(resp.status, err?.code ?? "error", err?.message ?? resp.statusText);
    }
    return json as T;
  }

  async agents(): Promise<Agent[]> {
    const page = await this.request<{ items: { id: string; config: { name: string } }[] }>(
      "GET",
      "/v1/agents?limit=100",
    );
    return page.items.map((a) => ({ id: a.id, name: a.config.name }));
  }

  startSession(agentId: string): Promise<WebSession> {
    return this.request<WebSession>("POST", "/v1/sessions/web", { agent_id: agentId });
  }

  sendOffer(url: string, offer: { sdp: string; type: string; pc_id?: string }): Promise<Answer> {
    return this.request<Answer>("POST", url, offer);
  }
}
