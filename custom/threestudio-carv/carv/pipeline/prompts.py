"""Prompt embeddings per render with threestudio's view-dependent suffixes, and the teacher-vocabulary check."""

from __future__ import annotations

from pathlib import Path

import torch

from ..score_distillation import TextConditioning
from ..toyworld.cameras import VIEW_NAMES, view_suffix
from ..toyworld.tokenizer import END_OF_WORD, unknown_words
from .errors import UserError

LISTED_WORDS = 60
WORD_LEVEL_VOCABULARY = 5000
"""Tokenizers up to this size are word-level (the toy teacher's): a word that is not one token is unknown to
the teacher. A full CLIP BPE (49k tokens) spells rare words from pieces it learnt, so they are not checked."""


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
        f"the teacher in {teacher_folder} does not know the word(s) {', '.join(unknown)} of prompt {prompt!r}; "
        f"it knows: {listed}. To use another teacher, pass system.guidance.pretrained_model_name_or_path=FOLDER "
        f"(a local diffusers Stable Diffusion folder)"
    )


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


def prompt_encoder(teacher_folder: str | Path, prompt: str, device: torch.device | str = "cpu"):
    """carv.diffusion.teacher.PromptEncoder of the folder, after checking the prompt's words against its tokenizer."""
    from ..diffusion.teacher import PromptEncoder

    encoder = PromptEncoder(teacher_folder, device)
    check_vocabulary(prompt, encoder.tokenizer, str(teacher_folder))
    return encoder
