from ..pipeline.conftest import toy_teacher  # noqa: F401  (the same session fixture)
