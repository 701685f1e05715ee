"""A tiny Hugging Face text classifier built here, never downloaded: a 2-layer BERT with random weights
(seeded) and a word-level tokenizer made with the `tokenizers` library, saved with `save_pretrained`
the way a user's model folder is. It loads in well under a second and answers deterministically.

Its classifier is set so that the words of `POSITIVE_WORDS` push towards POSITIVE and those of
`NEGATIVE_WORDS` towards NEGATIVE, so two inputs give visibly different labels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# No model hub, ever: huggingface_hub reads this when first imported, which is after this module
# (transformers is imported inside the functions below), and runtimes and meshes started by tests inherit it.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
POSITIVE_WORDS = ("good", "great", "love")
NEGATIVE_WORDS = ("bad", "awful", "hate")
VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE_WORDS, *NEGATIVE_WORDS, "the", "movie", "is")


def build_text_classifier(folder: Path) -> Path:
    """Write the model and its tokenizer into `folder` (created) and return it."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {word: index for index, word in enumerate(VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=32,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        initializer_range=0.5,
        num_labels=len(LABELS),
        id2label=dict(LABELS),
        label2id={label: index for index, label in LABELS.items()},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def pipeline_answers(folder: Path, texts: list[str]) -> list[Any]:
    """What the transformers pipeline itself answers for `texts` in this process."""
    from transformers import pipeline

    answers: list[Any] = pipeline("text-classification", model=str(folder), device=-1)(texts)
    return answers
