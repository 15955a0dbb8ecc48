"""The dashboard API (FastAPI, under /v1): agents, knowledge, contacts, calls. See issue 3."""
