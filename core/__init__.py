"""looptool's headless core: models, backends, tool-call codec, results store, the loop engine.

Never imports textual or console/ (tests/test_boundaries.py enforces it)."""
