"""The word-level CLIP tokenizer: every known word is one token, unknown words are reported."""

import pytest
from transformers import CLIPTokenizer

from carv.toyworld.tokenizer import caption_form, unknown_words, write_clip_tokenizer

WORDS = ["a", "red", "read", "bread", "mug", "muggle", "chair", "front", "view", "overhead", "side", "back"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    write_clip_tokenizer(str(folder), WORDS, model_max_length=16)
    return CLIPTokenizer.from_pretrained(str(folder)), str(folder)


def test_every_word_is_one_token(tokenizer):
    tok, _ = tokenizer
    for word in WORDS:
        ids = tok(word, add_special_tokens=False).input_ids
        assert len(ids) == 1, (word, tok.convert_ids_to_tokens(ids))
        assert tok.convert_ids_to_tokens(ids) == [word + "</w>"]


def test_prompt_round_trip_and_padding(tokenizer):
    tok, _ = tokenizer
    out = tok("a red mug, front view", padding="max_length", max_length=tok.model_max_length)
    tokens = tok.convert_ids_to_tokens(out.input_ids)
    assert tokens[:8] == [
        "<|startoftext|>",
        "a</w>",
        "red</w>",
        "mug</w>",
        ",</w>",
        "front</w>",
        "view</w>",
        "<|endoftext|>",
    ]
    assert len(out.input_ids) == 16
    assert tok.pad_token_id == tok.eos_token_id


def test_unknown_words_are_reported(tokenizer):
    tok, folder = tokenizer
    assert unknown_words("a red mug, front view", tok) == []
    assert unknown_words("a red hamburger, front view", folder) == ["hamburger"]
    assert unknown_words("A RED Mug", tok) == []
    assert unknown_words("a blue muggles", tok) == ["blue", "muggles"]


def test_rejects_non_ascii_words(tmp_path):
    with pytest.raises(ValueError, match="lower-case"):
        write_clip_tokenizer(str(tmp_path), ["Red"])


def test_caption_form_drops_the_sentence_end_and_reads_an_as_a(tokenizer):
    tok, _ = tokenizer
    vocab = tok.get_vocab()
    assert caption_form("an orange chair.", vocab) == "a orange chair"
    assert caption_form("  An Orange chair ?! ", vocab) == "A Orange chair"
    assert caption_form("a red mug, front view.", vocab) == "a red mug, front view"
    assert caption_form("a red mug, side view", vocab) == "a red mug, side view"  # the captions' comma stays
    assert caption_form("a banana", vocab) == "a banana"  # "an" only as a word
    assert unknown_words(caption_form("an red mug...", vocab), tok) == []
    with_an = {**vocab, "an</w>": len(vocab)}
    assert caption_form("an orange chair", with_an) == "an orange chair"  # a vocabulary that knows "an" keeps it
