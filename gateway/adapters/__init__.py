"""Adapters: ``store`` (what is on disk and whether it is valid) and ``serving`` (what the
engines serve, and how versions come and go). Rollouts live in :mod:`gateway.rollouts`.
See docs/adapters.md.
"""
