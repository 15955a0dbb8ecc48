"""Keyboard chat with an agent's LLM, prompt and tools (no audio)."""
