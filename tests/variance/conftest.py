from ..pipeline.conftest import random_judge, toy_teacher  # noqa: F401  (the same session fixtures)
