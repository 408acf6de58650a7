import pytest
import torch

from carv.cameras import VIEW_NAMES
from carv.pipeline.errors import UserError
from carv.pipeline.prompts import ViewDependentPrompts, check_prompt, check_vocabulary, known_words, teacher_prompt


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


@pytest.fixture(scope="module")
def toy_tokenizer(toy_teacher):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(toy_teacher / "tokenizer")


def test_a_prompt_the_tokenizer_would_cut_is_refused_with_the_reason(toy_tokenizer):
    assert toy_tokenizer.model_max_length == 16
    fits = "a a a a a a a a red mug"  # 10 tokens + ", overhead view" (3) + start and end = 15
    check_prompt(fits, toy_tokenizer, "teacher")
    longer = "a a a a a a a a a a red mug"  # 17 with the view suffix
    with pytest.raises(UserError, match=r"17 tokens .* keeps 16 and would cut the rest silently: shorten it by 1"):
        check_prompt(longer, toy_tokenizer, "teacher")
    check_prompt(longer, toy_tokenizer, "teacher", view_dependent=False)
    with pytest.raises(UserError, match="negative prompt"):
        check_prompt(fits, toy_tokenizer, "teacher", negative_prompt=" ".join(["blue"] * 15), view_dependent=False)


def test_a_500_word_prompt_is_quoted_short(toy_tokenizer):
    with pytest.raises(UserError) as error:
        check_prompt(" ".join(["red"] * 500), toy_tokenizer, "teacher")
    assert "505 tokens" in str(error.value)  # 500 words, the view suffix (3) and the start and end tokens
    assert len(str(error.value)) < 400 and "(1999 characters)" in str(error.value)


class FullBPE:
    """Stands for a CLIP BPE of 49k tokens: any text is read as given."""

    def __len__(self):
        return 49408


def test_word_level_teachers_read_prompts_in_their_caption_form(toy_tokenizer):
    assert teacher_prompt("an orange teapot.", toy_tokenizer) == "a orange teapot"
    assert teacher_prompt("An orange teapot, front view!", toy_tokenizer) == "A orange teapot, front view"
    assert teacher_prompt("a red mug", toy_tokenizer) == "a red mug"
    assert teacher_prompt("an orange teapot.", FullBPE()) == "an orange teapot."
