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


def test_data_show_and_train_take_the_folder(tmp_path, resources, capsys):
    assert main(["--dataset-dir", str(USER_DATASETS), "data", "show", "shop_reviews"]) == 0
    assert "== shop_reviews (Shop reviews, en, classification" in capsys.readouterr().out
    out = tmp_path / "model"
    assert main(["--dataset-dir", str(USER_DATASETS), "train", "--dataset", "shop_reviews", "--backbone", "tiny-bert",
                 "--recipe", "baseline", "--max-length", "32", "--epochs", "1", "--batch-size", "16",
                 "--resources", str(resources), "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "training.json").read_text())["dataset"] == "shop_reviews"


@pytest.mark.parametrize(("change", "message"), [
    ("task: classification", "task 'sorting' is not classification or regression"),
    ("metrics: [accuracy]", "unknown metric 'acuracy'"),
    ("fmt: csv", "unexpected keyword argument 'colour'"),
])
def test_bad_declarations_name_the_file_and_the_problem(tmp_path, change, message):
    replacement = {"task: classification": "task: sorting", "metrics: [accuracy]": "metrics: [acuracy]",
                   "fmt: csv": "fmt: csv\n    colour: red"}[change]
    path = tmp_path / "bad.yaml"
    path.write_text((USER_DATASETS / "shop_reviews.yaml").read_text().replace(change, replacement))
    with pytest.raises(DataError) as info:
        declaration(path)
    assert str(path) in str(info.value) and message in str(info.value) and "\n" not in str(info.value)


def test_a_name_clash_with_a_built_in_dataset_is_refused(tmp_path):
    (tmp_path / "sst2.yaml").write_text((USER_DATASETS / "shop_reviews.yaml").read_text().replace(
        "name: shop_reviews", "name: sst2"))
    with pytest.raises(DataError, match="name 'sst2' is taken"):
        use_dataset_dirs([tmp_path])
