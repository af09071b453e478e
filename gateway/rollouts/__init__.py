"""Rollouts: a candidate adapter version earning its traffic.

``rollout`` (stages, routing, the gate's decisions) and ``book`` (the rollouts of every
adapter, on disk). Pure bookkeeping: the adapter service acts on the decisions.
"""
