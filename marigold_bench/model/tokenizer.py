"""The smallest real CLIP tokenizer: a byte-level vocabulary with no merges.

Shared by the tiny components (:mod:`marigold_bench.model.tiny`) and the SD-v2-size random
pipeline of the benchmarks (:mod:`marigold_bench.model.sd2_configs`); it sits in a module of its
own so that those two import it, not each other. Only the empty prompt is ever encoded, so a
vocabulary without merges changes nothing the suite measures.
"""

from __future__ import annotations

import json
import os
import tempfile


def _printable_bytes() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: printable bytes stand for themselves, the other bytes are
    shifted above 255 so that every byte has a visible, whitespace-free character."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
            *range(ord("\u00ae"), ord("\u00ff") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(shifted)) for b in range(256)]


def _byte_level_vocab() -> dict[str, int]:
    # CLIP's BPE works on a printable remapping of the 256 bytes; a vocabulary of the bare bytes
    # (plus their end-of-word forms and the two specials) is the smallest one it accepts.
    chars = _printable_bytes()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}


def tiny_tokenizer():
    """A real CLIPTokenizer over a byte-level vocabulary with no merges."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, "vocab.json")
        merges_file = os.path.join(tmp, "merges.txt")
        with open(vocab_file, "w", encoding="utf-8") as f:
            json.dump(_byte_level_vocab(), f)
        with open(merges_file, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
        return CLIPTokenizer(vocab_file, merges_file, model_max_length=77)


__all__ = ["tiny_tokenizer"]
