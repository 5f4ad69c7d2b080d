"""radinterp: mechanistic interpretability for radiology multimodal LLMs.

The core package holds model adapters, hooks, the activation store, SAE load/save, the
config base and the CLI. Stage packages (``sae_training``, ``autointerp``, ``steering``,
``eval``) import the core, never the other way round.
"""

__version__ = "0.1.0"
