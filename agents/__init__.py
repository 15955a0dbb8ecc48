"""Runtimes that put a pipeline into a room: the WAV harness, and (later) LiveKit, P2P, SIP."""
