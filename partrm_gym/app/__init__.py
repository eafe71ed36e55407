"""Application code at the top of the import arrows: the ``partrm-gym`` CLI, the demo, ``compare`` and the
benchmarks. Only these modules may import every layer (core ``partrm_gym``, ``envs``, ``model``, ``train``,
``policies``); the core imports none of ``train``, ``envs`` or ``policies`` (docs/architecture.md, tested)."""
