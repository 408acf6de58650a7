"""Test and benchmark fixtures (import by module path: they need diffusers and transformers)."""
