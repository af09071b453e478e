"""``adapter-gateway train``: a LoRA adapter from chat examples, straight into the store.

An offline tool beside the server: PEFT and transformers fine-tune the served base model
on answers only (the prompt rendered with the model's own chat template, as the engine
renders it), and the result is a complete adapter folder (PEFT files, ``adapter.yaml`` with
its digest and serving defaults, a training card) that the gateway validates and
hot-loads unchanged. See docs/training.md.
"""
