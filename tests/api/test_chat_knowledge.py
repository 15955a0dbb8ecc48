"""The agents' text chat answers from the agent's knowledge bases, like a call does."""

from __future__ import annotations

import httpx

from parley.config import load_agent
from tests.api.conftest import Tenant
from tests.api.test_knowledge import _knowledge_env, new_base, wait_done
from tests.fakes import FakeCloud, Script

__all__ = ["_knowledge_env"]
FACT = "Visitors park in the blue garage; the gate code for parking is 4729."


async def test_chat_uses_the_knowledge_base(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    h = world["A"].key_headers()
    base = await new_base(api, h)
    doc = await api.post(
        f"/v1/knowledge-bases/{base}/documents", json={"title": "Parking", "text": FACT}, headers=h
    )
    assert (await wait_done(api, h, base, doc.json()["id"]))["status"] == "ready"
    with FakeCloud(Script(default="The code is 4729."), api_key=None) as cloud:
        cfg = load_agent("dental").model_dump(mode="json") | {
            "tools": [],
            "llm": {"provider": "openai", "base_url": cloud.openai_base_url, "model": "m"},
            "knowledge": {"base_ids": [base], "mode": "per_turn"},
        }
        agent = (await api.post("/v1/agents", json=cfg, headers=h)).json()
        r = await api.post(
            f"/v1/agents/{agent['id']}/chat",
            json={"message": "What is the parking gate code?"},
            headers=h,
        )
        sent = cloud.requests[0]["messages"]
    assert r.status_code == 200, r.text
    assert r.json()["reply"] == "The code is 4729." and len(r.json()["knowledge_chunk_ids"]) == 1
    assert any(m["role"] == "developer" and "4729" in str(m["content"]) for m in sent), sent
