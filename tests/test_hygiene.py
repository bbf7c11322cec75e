"""Repeated texts, texts shared with train, and a single-class training split are counted and warned about."""

import pandas as pd

from fastexit_bench.data.hygiene import check_splits, warnings
from fastexit_bench.data.loading import LoadedSplit
from fastexit_bench.data.spec import DATASETS

SST2 = DATASETS.get("sst2")


def split(name, texts, labels):
    return LoadedSplit(SST2, name, pd.DataFrame({"text_a": texts, "label": labels}), {})


def test_repeats_overlap_and_balance_are_counted():
    train = split("train", ["a", "b", "b", "c"], [0, 1, 1, 0])
    dev = split("validation", ["c", "d", "e", "e"], [0, 1, 0, 0])
    report = check_splits(train, [dev])
    assert report["train"].to_dict() == {
        "rows": 4,
        "repeated_texts": 1,
        "labels": {"negative": 2, "positive": 2},
        "shared_with_train": None,
    }
    assert report["validation"].repeated_texts == 1 and report["validation"].shared_with_train == 1
    assert warnings(report, "train", "classification") == [
        "validation: 1 of 4 rows also occur in train; scores on them overstate the model"
    ]


def test_a_single_class_training_split_is_a_warning():
    report = check_splits(split("train", ["a", "b"], [1, 1]), [split("validation", ["c"], [0])])
    assert warnings(report, "train", "classification") == [
        "train: one class only ({'positive': 2}); a classifier cannot learn from it"
    ]


def test_clean_splits_give_no_warning():
    report = check_splits(split("train", ["a", "b"], [0, 1]), [split("validation", ["c"], [0])])
    assert warnings(report, "train", "classification") == []
