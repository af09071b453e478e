"""Assembly: what turns the settings into running parts (the engine, the store, metrics).

With ``gateway.app`` and ``gateway.cli``, the only code that reads ``gateway.config``;
the domains below get their own settings section and nothing else.
"""
