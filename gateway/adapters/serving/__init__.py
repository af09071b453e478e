"""Serving adapter versions: their lifecycle, the leases requests hold, staging,
publishing to the engines and the claims shared with other gateway processes.

``versions`` (the state machine of one version), ``registry`` (versions by name, leases),
``service`` (loads, swaps, drains), ``staging``/``publish`` (how a version reaches the
engines), ``claims`` (what other processes still use). See docs/adapters.md.
"""
