"""The compile check: every grammar the engine would compile, compiled first by the engine's
own compiler in a worker process under a time and memory limit, and the verdict cached.

See docs/structured-outputs.md (constrained decoding) and ``gateway.structured.grammars``.
"""
