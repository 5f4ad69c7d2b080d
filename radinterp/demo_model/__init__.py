"""The ``demo`` model: a MAIRA-2-shaped LLaVA trained on phantoms around the real SmolLM2.

- :mod:`.config`  -- :class:`DemoModelConfig` (architecture) and the training configs.
- :mod:`.lora`    -- a minimal LoRA for ``nn.Linear`` (wrap, merge, state dict).
- :mod:`.build`   -- build the model from the installed SmolLM2 GGUF; save / load our weights.
- :mod:`.data`    -- phantom studies -> cached tensors for training.
- :mod:`.train_vision`, :mod:`.train_lm`, :mod:`.train` -- the two seeded training stages.

The adapter itself is :class:`radinterp.models.demo.DemoAdapter` (``load_adapter("demo")``).
"""
