"""Scripted model servers for the agent conformance tests (see harness)."""
