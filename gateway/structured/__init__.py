"""Structured outputs: schema bounds and registry, validation, deviation classification, retries.

Everything here is pure or holds only its own bounded state; calling the
engine is the request path's business. See docs/structured-outputs.md.
"""
