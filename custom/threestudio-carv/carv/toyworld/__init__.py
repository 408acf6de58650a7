"""The toy world: procedural 3D objects, a renderer, a judge and an embedded teacher.

World, renderer and judge are pure PyTorch (the camera conventions it shares with the CPU pipeline are
carv.cameras); ``carv.toyworld.teacher`` (training the Stable-Diffusion-format teacher) imports diffusers and is
only imported by path. The names below are the one door through which the CPU pipeline meets the toy world:
evaluation (the judge, the ground truth), the prompts it can express and the light of its renders.
"""

from .ground_truth import RACE_FIGURE, TrueViews, score_views, true_views
from .judge import Judge
from .render import light_directions
from .tokenizer import END_OF_WORD, caption_form, unknown_words
from .world import parse_prompt

__all__ = [
    "END_OF_WORD",
    "RACE_FIGURE",
    "Judge",
    "TrueViews",
    "caption_form",
    "light_directions",
    "parse_prompt",
    "score_views",
    "true_views",
    "unknown_words",
]
