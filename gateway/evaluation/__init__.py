"""``adapter-gateway eval``: should this format be fine-tuned? Measure, classify, decide.

An offline tool beside the server: it sends a dataset through a gateway's HTTP API, as an
application would, under several variants (prompt only, with retries, with constrained
decoding, with an adapter), and writes a report with the deviation rate by failure type,
the accuracy split into format and content failures, latency, tokens, cost, and a
recommendation with its economics. It reuses the pure ``gateway.structured`` library and
never the server's services. See docs/eval.md.
"""
