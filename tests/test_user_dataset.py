"""A dataset declared outside the package (one labelled CSV, no splits) works through the CLI like a
built-in one; bad declarations fail with one line naming the file."""

import json
from pathlib import Path

import pytest

from fastexit_bench.cli import main
from fastexit_bench.data.loading import load_split
from fastexit_bench.data.spec import declaration, use_dataset_dirs
from fastexit_bench.errors import DataError

USER_DATASETS = Path(__file__).resolve().parent / "user_datasets"


def test_declaration_carves_the_csv_with_a_fixed_seed():
    use_dataset_dirs([USER_DATASETS])
    splits = {s: load_split("shop_reviews", s) for s in ("train", "validation", "test")}
    assert [len(s.frame) for s in splits.values()] == [72, 24, 24]
    texts = [set(s.frame.text_a) for s in splits.values()]
    assert sum(map(len, texts)) == len(set().union(*texts)) == 120
    assert splits["train"].origin["carved"]["seed"] == 0 and splits["train"].origin["source"].endswith(".csv")
    assert load_split("shop_reviews", "train").frame.equals(splits["train"].frame)


def test_a_dataset_whose_dev_is_reported_selects_on_a_share_of_train(tmp_path):
    """GLUE-style: one eval split, so a seeded 10 % of train becomes the selection split, out of training,
    and never overlapping the reported split."""
    text = (
        (USER_DATASETS / "shop_reviews.yaml")
        .read_text()
        .replace("eval_splits: [validation, test]", "eval_splits: [validation]")
    )
    text = text.replace("name: shop_reviews", "name: shop_reviews_dev")
    (tmp_path / "shop_reviews.csv").write_text((USER_DATASETS / "shop_reviews.csv").read_text())
    text = text.replace(
        "parts: {train: 0.6, validation: 0.2, test: 0.2}", "parts: {train: 0.8, validation: 0.2}"
    )
    (tmp_path / "shop_reviews_dev.yaml").write_text(text)
    use_dataset_dirs([tmp_path])
    spec = declaration(tmp_path / "shop_reviews_dev.yaml")
    assert spec.evaluated_splits == ("selection", "validation") and spec.loadable_splits == (
        "train",
        "selection",
        "validation",
    )
    splits = {s: load_split(spec, s) for s in spec.loadable_splits}
    assert [len(s.frame) for s in splits.values()] == [86, 10, 24]  # 10 % of the 96 training rows
    texts = [set(s.frame.text_a) for s in splits.values()]
    assert sum(map(len, texts)) == len(set().union(*texts)) == 120
    carved = splits["selection"].origin["selection_carved"]
    assert (carved["seed"], carved["selection_rows"], carved["from_split"]) == (0, 10, "train")
    assert load_split(spec, "selection").frame.equals(splits["selection"].frame)
    builtin = declaration(USER_DATASETS / "shop_reviews.yaml")
    assert builtin.evaluated_splits == ("validation", "test") and "selection" not in builtin.loadable_splits


def test_data_show_and_train_take_the_folder(tmp_path, resources, capsys):
    assert main(["--dataset-dir", str(USER_DATASETS), "data", "show", "shop_reviews"]) == 0
    assert "== shop_reviews (Shop reviews, en, classification" in capsys.readouterr().out
    out = tmp_path / "model"
    assert (
        main(
            [
                "--dataset-dir",
                str(USER_DATASETS),
                "train",
                "--dataset",
                "shop_reviews",
                "--backbone",
                "tiny-bert",
                "--recipe",
                "baseline",
                "--max-length",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--resources",
                str(resources),
                "--device",
                "cpu",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads((out / "training.json").read_text())["dataset"] == "shop_reviews"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("task: classification", "task 'sorting' is not classification or regression"),
        ("metrics: [accuracy]", "unknown metric 'acuracy'"),
        ("fmt: csv", "unexpected keyword argument 'colour'"),
    ],
)
def test_bad_declarations_name_the_file_and_the_problem(tmp_path, change, message):
    replacement = {
        "task: classification": "task: sorting",
        "metrics: [accuracy]": "metrics: [acuracy]",
        "fmt: csv": "fmt: csv\n    colour: red",
    }[change]
    path = tmp_path / "bad.yaml"
    path.write_text((USER_DATASETS / "shop_reviews.yaml").read_text().replace(change, replacement))
    with pytest.raises(DataError) as info:
        declaration(path)
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)


def test_a_name_clash_with_a_built_in_dataset_is_refused(tmp_path):
    (tmp_path / "sst2.yaml").write_text(
        (USER_DATASETS / "shop_reviews.yaml").read_text().replace("name: shop_reviews", "name: sst2")
    )
    with pytest.raises(DataError, match="name 'sst2' is taken"):
        use_dataset_dirs([tmp_path])
