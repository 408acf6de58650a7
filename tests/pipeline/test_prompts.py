import pytest
import torch

from carv.pipeline.errors import UserError
from carv.pipeline.prompts import ViewDependentPrompts, check_vocabulary, known_words
from carv.toyworld.cameras import VIEW_NAMES


class RecordingEncoder:
    """Embeds text i as the constant i, and remembers the texts."""

    def __call__(self, texts):
        self.texts = texts
        return torch.arange(len(texts), dtype=torch.float32).view(-1, 1, 1).expand(-1, 3, 2).clone()


def test_each_render_gets_the_prompt_of_its_view_class():
    encoder = RecordingEncoder()
    prompts = ViewDependentPrompts(encoder, "a red mug")
    assert encoder.texts[VIEW_NAMES.index("front")] == "a red mug, front view" and encoder.texts[-1] == ""
    views = torch.tensor([VIEW_NAMES.index("back"), VIEW_NAMES.index("front"), VIEW_NAMES.index("back")])
    text = prompts.conditioning(views)
    assert text.cond[:, 0, 0].tolist() == views.float().tolist()
    assert text.uncond.shape[0] == 1 and text.uncond[0, 0, 0] == len(VIEW_NAMES)


def test_unknown_words_name_the_known_ones(toy_teacher):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(toy_teacher / "tokenizer")
    assert {"mug", "red", "front", "view"} <= set(known_words(tokenizer))
    check_vocabulary("a red mug", tokenizer, "teacher")
    with pytest.raises(UserError, match="zebra.*knows: a, back, blue.*pretrained_model_name_or_path"):
        check_vocabulary("a red zebra", tokenizer, "teacher")
