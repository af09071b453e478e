"""The adapter store: manifests and validation, the version registry, and the folder watcher.

Modules: ``manifest`` (adapter.yaml), ``paths`` (caller paths -> store folders),
``validation`` (folder -> AdapterSpec or a typed refusal), ``registry`` (versions,
leases, hot swaps), ``scan``/``watcher`` (the store on disk), ``staging`` (the copy
the engine loads). See docs/adapters.md.
"""
