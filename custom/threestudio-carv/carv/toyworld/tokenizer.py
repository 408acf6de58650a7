"""A word-level CLIP tokenizer written from scratch for a small vocabulary.

Stable Diffusion folders carry a byte-level BPE CLIP tokenizer (``vocab.json``
and ``merges.txt``). ``write_clip_tokenizer`` builds one in which every given
word is a single token: the base byte alphabet (so any text still tokenizes),
then, word by word, a chain of merges that joins the word's pieces left to
right. Each word's merges are appended after all earlier ones, so they can
never be pre-empted by a later word's merges (BPE always applies the
lowest-ranked merge first). ``unknown_words`` reports the words of a prompt
that are not single tokens, which the tokenizer would otherwise silently split
into pieces.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

END_OF_WORD = "</w>"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
WORD_PATTERN = re.compile(r"[a-z]+|[0-9]|[^\sa-z0-9]+")
SENTENCE_END = re.compile(r"[\s.!?;:]+$")
"""Marks that end a sentence; a caption ("a red mug, front view") ends with a word."""
ARTICLE_AN = re.compile(r"\b(a)n\b", re.IGNORECASE)


def byte_alphabet() -> list[str]:
    """The 256 printable characters that byte-level BPE uses for the bytes 0..255 (GPT-2's table)."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def _word_symbols(word: str) -> list[str]:
    """Initial BPE symbols of one lower-case ASCII word: its characters, the last marked end-of-word."""
    return list(word[:-1]) + [word[-1] + END_OF_WORD]


def _apply_merges(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Plain BPE: repeatedly join the adjacent pair with the lowest merge rank."""
    symbols = list(symbols)
    while len(symbols) > 1:
        pairs = [(ranks.get(pair, len(ranks) + 1), i) for i, pair in enumerate(zip(symbols, symbols[1:], strict=False))]
        rank, i = min(pairs)
        if rank > len(ranks):
            break
        symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols


def _validated_words(words: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(words))
    for word in unique:
        if not re.fullmatch(r"[a-z]+", word):
            raise ValueError(f"write_clip_tokenizer: words must be lower-case ASCII letters, got {word!r}")
    return unique


def build_vocabulary(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return (vocab, merges) of a byte-level BPE in which every word is one token."""
    alphabet = byte_alphabet()
    tokens = alphabet + [char + END_OF_WORD for char in alphabet]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in _validated_words(words):
        pieces = _apply_merges(_word_symbols(word), ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            tokens.append(pair[0] + pair[1])
            pieces = [pair[0] + pair[1]] + pieces[2:]
    tokens = list(dict.fromkeys(tokens)) + [START_TOKEN, END_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: str, words: Iterable[str], model_max_length: int = 77) -> None:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` of a CLIP tokenizer to ``folder``.

    Every word in ``words`` (lower-case ASCII letters) becomes a single token;
    other text still tokenizes into byte-level pieces. The padding token is
    ``<|endoftext|>`` as in Stable Diffusion 1.x. Loads with
    ``transformers.CLIPTokenizer.from_pretrained(folder)``.
    """
    if model_max_length < 3:
        raise ValueError(f"write_clip_tokenizer: model_max_length must be >= 3, got {model_max_length}")
    vocab, merges = build_vocabulary(words)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, indent=1)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{left} {right}\n" for left, right in merges)
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": model_max_length,
        "bos_token": START_TOKEN,
        "eos_token": END_TOKEN,
        "unk_token": END_TOKEN,
        "pad_token": END_TOKEN,
        "do_lower_case": True,
        "clean_up_tokenization_spaces": False,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)


def prompt_words(prompt: str) -> list[str]:
    """Split a prompt the way CLIP's pre-tokenizer does for ASCII text: letter runs, digits, punctuation runs."""
    return WORD_PATTERN.findall(prompt.lower())


def caption_form(prompt: str, vocab) -> str:
    """The prompt as captions of a word-level vocabulary write it: without the full stop (! ? ; :) that ends a
    sentence, and "an" as "a" where the vocabulary has "a" but not "an" (the same article before a vowel)."""
    text = SENTENCE_END.sub("", prompt.strip())
    if "an" + END_OF_WORD not in vocab and "a" + END_OF_WORD in vocab:
        text = ARTICLE_AN.sub(lambda match: match.group(1), text)
    return text


def unknown_words(prompt: str, tokenizer_or_folder) -> list[str]:
    """Words of ``prompt`` that are not a single token of the tokenizer (a folder path or a tokenizer).

    Punctuation that the byte alphabet covers as one token (",", ".") counts as known.
    """
    tokenizer = tokenizer_or_folder
    if isinstance(tokenizer_or_folder, (str, os.PathLike)):
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(os.fspath(tokenizer_or_folder))
    vocab = tokenizer.get_vocab()
    unknown = []
    for word in prompt_words(prompt):
        if word + END_OF_WORD not in vocab and word not in unknown:
            unknown.append(word)
    return unknown
