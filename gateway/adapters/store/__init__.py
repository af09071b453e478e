"""The adapter store: folders on disk, manifests, validation, the scan and the watcher.

``paths`` (caller paths -> store folders), ``manifest`` (adapter.yaml), ``validation``
(folder -> AdapterSpec or a typed refusal, with ``peft_config``, ``weights`` and
``safetensors_header``), ``scan``/``watcher`` (the store on disk).
"""
