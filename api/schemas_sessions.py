"""Bodies of the web session endpoints (browser voice calls) and the LiveKit webhook."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from api.schemas_common import check_text


class WebSessionIn(BaseModel):
    agent_id: UUID = Field(description="The agent to talk to (of the caller's organization).")


class LiveKitSessionOut(BaseModel):
    """Join ``room`` at ``url`` with ``token`` (LiveKit JS client); the agent is on its way."""

    call_id: UUID
    mode: Literal["livekit"] = "livekit"
    room: str
    url: str = Field(description="The LiveKit server's WebSocket URL, as browsers reach it.")
    token: str = Field(description="Join this room only; short-lived (see expires_at).")
    expires_at: datetime = Field(description="Join before this; a joined session continues.")


class P2PSessionOut(BaseModel):
    """Embedded mode (no LiveKit server): POST the page's SDP offer to ``offer_url``."""

    call_id: UUID
    mode: Literal["p2p"] = "p2p"
    offer_url: str


WebSessionOut = Annotated[LiveKitSessionOut | P2PSessionOut, Field(discriminator="mode")]

Sdp = Annotated[str, Field(min_length=1, max_length=100_000), AfterValidator(check_text)]


class OfferIn(BaseModel):
    """A complete offer (gather ICE candidates before sending it: there is no trickle)."""

    sdp: Sdp
    type: Literal["offer"]
    pc_id: str | None = Field(
        None,
        max_length=200,
        description="Only to renegotiate the live peer connection: the pc_id of the answer.",
    )


class AnswerOut(BaseModel):
    sdp: str
    type: Literal["answer"]
    pc_id: str


class WebhookAck(BaseModel):
    event: str
    applied: bool = Field(description="False for duplicates and events about unknown rooms.")
