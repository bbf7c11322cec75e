"""A dataset declared outside the package (one labelled CSV, no splits) works through the CLI like a
built-in one; bad declarations fail with one line naming the file."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import ExitArtifact
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


def test_a_model_evaluates_on_another_dataset_with_its_labels(tmp_path, resources, capsys):
    """`evaluate --dataset`: a shifted dataset with the same labels is read as the model's own would be (here a
    copy of the same rows: the same logits), and the artefact names both; other labels are refused."""
    shifted = tmp_path / "datasets"
    shifted.mkdir()
    (shifted / "shop_copy.yaml").write_text(
        (USER_DATASETS / "shop_reviews.yaml")
        .read_text()
        .replace("name: shop_reviews", "name: shop_copy")
        .replace("roots: [./]", f"roots: [{USER_DATASETS}]")
    )
    dirs = ["--dataset-dir", str(USER_DATASETS), "--dataset-dir", str(shifted)]
    model, common = tmp_path / "model", ["--resources", str(resources), "--device", "cpu"]
    train = ["train", "--dataset", "shop_reviews", "--backbone", "tiny-bert", "--recipe", "deebert"]
    assert main([*dirs, *train, "--max-length", "32", "--max-steps", "2", *common, "--out", str(model)]) == 0
    own, copy = tmp_path / "own.npz", tmp_path / "copy.npz"
    assert main([*dirs, "evaluate", str(model), "--split", "test", *common, "--out", str(own)]) == 0
    evaluate_copy = ["evaluate", str(model), "--dataset", "shop_copy", "--split", "test", *common]
    assert main([*dirs, *evaluate_copy, "--out", str(copy)]) == 0
    own, copy = ExitArtifact.load(own), ExitArtifact.load(copy)
    assert (copy.metadata.dataset, copy.metadata.trained_on, own.metadata.trained_on) == (
        "shop_copy",
        "shop_reviews",
        None,
    )
    np.testing.assert_allclose(copy.predictions.logits, own.predictions.logits, atol=1e-5)
    # operating points chosen in-domain, measured on the shifted set: the same numbers, labelled with both
    dev = tmp_path / "dev.npz"
    assert main([*dirs, "evaluate", str(model), "--split", "validation", *common, "--out", str(dev)]) == 0
    for test in ("own", "copy"):
        assert (
            main(
                [
                    "sweep",
                    str(dev),
                    "--test",
                    str(tmp_path / f"{test}.npz"),
                    "--out",
                    str(tmp_path / f"{test}.csv"),
                ]
            )
            == 0
        )
    chosen = {t: pd.read_csv(tmp_path / f"{t}.selection.csv") for t in ("own", "copy")}
    assert set(chosen["copy"].dataset) == {"shop_copy"} and set(chosen["copy"].trained_on) == {"shop_reviews"}
    pd.testing.assert_series_equal(chosen["copy"].test_accuracy, chosen["own"].test_accuracy)
    capsys.readouterr()
    assert (
        main(
            [
                *dirs,
                "evaluate",
                str(model),
                "--dataset",
                "bbc_news",
                *common,
                "--out",
                str(tmp_path / "x.npz"),
            ]
        )
        == 2
    )
    assert "cannot be evaluated on bbc_news" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


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
