"""Browser calls over WebRTC without a media server: the embedded peer-to-peer runtime."""

from agents.webrtc.p2p import AgentUnavailable, BadOffer, P2PCalls, PeerConflict

__all__ = ["AgentUnavailable", "BadOffer", "P2PCalls", "PeerConflict"]
