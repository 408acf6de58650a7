"""Prompt embeddings per render with threestudio's view-dependent suffixes; the prompt in the teacher's caption form,
checked against the teacher's vocabulary and the tokenizer's length."""

from __future__ import annotations

from pathlib import Path

import torch

from ..cameras import VIEW_NAMES, view_suffix
from ..score_distillation import TextConditioning
from ..toyworld import END_OF_WORD, caption_form, unknown_words
from .errors import UserError

LISTED_WORDS = 60
QUOTED_CHARACTERS = 80
UNLIMITED_LENGTH = 10**6
"""transformers' model_max_length of a tokenizer without a limit is a huge sentinel."""
WORD_LEVEL_VOCABULARY = 5000
"""Tokenizers up to this size are word-level (the toy teacher's): a word that is not one token is unknown to
the teacher. A full CLIP BPE (49k tokens) spells rare words from pieces it learnt, so they are not checked."""


def quoted(text: str) -> str:
    """repr of the text, its middle left out beyond QUOTED_CHARACTERS characters (for one-line messages)."""
    if len(text) <= QUOTED_CHARACTERS:
        return repr(text)
    half = QUOTED_CHARACTERS // 2
    return f"{text[:half]!r} ... {text[-half:]!r} ({len(text)} characters)"


def known_words(tokenizer) -> list[str]:
    """Whole words that are one token of the tokenizer (letters only), sorted."""
    words = (token[: -len(END_OF_WORD)] for token in tokenizer.get_vocab() if token.endswith(END_OF_WORD))
    return sorted(w for w in words if w.isalpha() and w.isascii() and (len(w) > 1 or w == "a"))


def check_vocabulary(prompt: str, tokenizer, teacher_folder: str) -> None:
    """UserError naming the prompt's unknown words, the teacher's words and how to use another teacher."""
    if len(tokenizer) > WORD_LEVEL_VOCABULARY:
        return
    unknown = unknown_words(prompt, tokenizer)
    if not unknown:
        return
    words = known_words(tokenizer)
    listed = ", ".join(words[:LISTED_WORDS]) + (f" ... ({len(words)} in all)" if len(words) > LISTED_WORDS else "")
    raise UserError(
        f"the teacher in {teacher_folder} does not know the word(s) {', '.join(unknown)} of prompt {quoted(prompt)}; "
        f"it knows: {listed}. To use another teacher, pass system.guidance.pretrained_model_name_or_path=FOLDER "
        f"(a local diffusers Stable Diffusion folder)"
    )


def teacher_prompt(prompt: str, tokenizer) -> str:
    """The prompt as a word-level teacher's captions write it (carv.toyworld.tokenizer.caption_form); a full CLIP
    BPE reads any text, so its prompts stay as given."""
    if len(tokenizer) > WORD_LEVEL_VOCABULARY:
        return prompt
    return caption_form(prompt, tokenizer.get_vocab())


def token_count(text: str, tokenizer) -> int:
    """Tokens of the text with the start and end tokens, before any cut."""
    return len(tokenizer(text, verbose=False).input_ids)


def check_length(text: str, tokenizer, what: str, alternative: str = "") -> None:
    """UserError when the tokenizer would cut the text at its model_max_length."""
    limit, needed = tokenizer.model_max_length, token_count(text, tokenizer)
    if limit < UNLIMITED_LENGTH and needed > limit:
        raise UserError(
            f"{what} is {needed} tokens with the start and end tokens; the teacher's tokenizer keeps {limit} and "
            f"would cut the rest silently: shorten it by {needed - limit} (a word or punctuation mark each){alternative}"
        )


def check_prompt(prompt: str, tokenizer, teacher_folder: str, negative_prompt: str = "", view_dependent=True) -> None:
    """The prompt's words are the teacher's, and neither the prompt with its longest view suffix nor the negative
    prompt is longer than the tokenizer keeps."""
    check_vocabulary(prompt, tokenizer, teacher_folder)
    if view_dependent:
        suffix = max((view_suffix(i) for i in range(len(VIEW_NAMES))), key=lambda s: token_count(prompt + s, tokenizer))
        what = f"prompt {quoted(prompt)} with its view suffix {suffix!r}"
        check_length(
            prompt + suffix, tokenizer, what, ", or pass system.prompt_processor.view_dependent_prompting=false"
        )
    else:
        check_length(prompt, tokenizer, f"prompt {quoted(prompt)}")
    check_length(negative_prompt, tokenizer, f"negative prompt {quoted(negative_prompt)}")


class ViewDependentPrompts:
    """cond per render chosen by its view class (prompt + ', front view' ...), one shared uncond."""

    def __init__(self, encoder, prompt: str, negative_prompt: str = "", view_dependent: bool = True):
        texts = [prompt + view_suffix(i) for i in range(len(VIEW_NAMES))] if view_dependent else [prompt]
        with torch.no_grad():
            embeddings = encoder([*texts, negative_prompt])
        self.cond = embeddings[:-1]  # [V, N, F]
        self.uncond = embeddings[-1:]  # [1, N, F]
        self.view_dependent = view_dependent

    def to(self, device: torch.device | str) -> ViewDependentPrompts:
        self.cond, self.uncond = self.cond.to(device), self.uncond.to(device)
        return self

    def conditioning(self, view_classes: torch.Tensor) -> TextConditioning:
        """TextConditioning for renders of view classes [R]."""
        if not self.view_dependent:
            return TextConditioning(self.cond, self.uncond)
        return TextConditioning(self.cond[view_classes.to(self.cond.device)], self.uncond)


def load_prompt_encoder(teacher_folder: str | Path, device: torch.device | str = "cpu"):
    """carv.diffusion.teacher.PromptEncoder of the folder; UserError if it has none that loads."""
    from ..diffusion.teacher import PromptEncoder

    try:
        return PromptEncoder(teacher_folder, device)
    except (FileNotFoundError, OSError, ValueError, KeyError) as error:
        raise UserError(f"cannot load the text encoder of {teacher_folder}: {error}") from None


def prompt_encoder(teacher_folder: str | Path, prompt: str, device: torch.device | str = "cpu"):
    """load_prompt_encoder, after checking the prompt (as given) against its tokenizer."""
    encoder = load_prompt_encoder(teacher_folder, device)
    check_prompt(prompt, encoder.tokenizer, str(teacher_folder))
    return encoder
