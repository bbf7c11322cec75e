"""DeeBERT's stage 1 is the baseline's fine-tune, bit for bit at fp32; starting from the saved baseline gives
the same DeeBERT, and a baseline of other settings is refused."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from fastexit_bench.cli import main
from tests.test_train_evaluate_cli import TRAIN


def train_args(recipe, resources, out, *extra):
    return ["train", *TRAIN, "--recipe", recipe, "--resources", str(resources), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def models(tmp_path_factory, resources):
    root = tmp_path_factory.mktemp("shared")

    def train(recipe, name, *extra):
        out = root / name
        assert main(train_args(recipe, resources, out, *extra)) == 0
        return out

    baseline = train("baseline", "baseline")
    return {
        "baseline": baseline,
        "deebert": train("deebert", "deebert"),
        "shared": train("deebert", "shared", "--finetuned-from", str(baseline)),
    }


def test_deebert_stage_one_equals_the_baseline_bit_for_bit(models):
    baseline, deebert = (
        load_file(str(models[name] / "model.safetensors")) for name in ("baseline", "deebert")
    )
    assert baseline.keys() == deebert.keys()
    off_ramps = [k for k in deebert if k.startswith("heads.") and not k.startswith("heads.3.")]
    for key in deebert.keys() - set(off_ramps):  # embeddings, layers, final head: stage 2 leaves them alone
        assert baseline[key].equal(deebert[key]), key
    assert any(not baseline[k].equal(deebert[k]) for k in off_ramps)


def test_deebert_from_the_saved_baseline_is_the_same_model(models):
    alone, shared = (load_file(str(models[name] / "model.safetensors")) for name in ("deebert", "shared"))
    assert all(alone[k].equal(shared[k]) for k in alone)
    record = json.loads((models["shared"] / "training.json").read_text())
    alone_record = json.loads((models["deebert"] / "training.json").read_text())
    assert record["shared_stages"]["finetune"]["model"] == str(models["baseline"])
    assert record["shared_stages"]["finetune"]["recipe"] == "baseline"
    assert record["stages"][0] == json.loads((models["baseline"] / "training.json").read_text())["stages"][0]
    assert record["first_stage"] == alone_record["first_stage"] and not alone_record["shared_stages"]
    assert record["dev_metric"] == alone_record["dev_metric"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--seed", "1"], "seed"),
        (["--lr", "5e-4"], "train_config"),
        (["--recipe", "fastbert"], "model"),  # branch heads
        (["--from", "deebert"], "whose result is not"),
    ],
)
def test_a_model_of_other_inputs_is_refused(models, resources, tmp_path, capsys, change, named):
    source = models[change[1]] if change[0] == "--from" else models["baseline"]
    extra = change if change[0] != "--from" else []
    assert (
        main(train_args("deebert", resources, tmp_path / "m", "--finetuned-from", str(source), *extra)) == 2
    )
    error = capsys.readouterr().err
    assert named in error.splitlines()[-1]
    assert not (tmp_path / "m" / "training.json").exists()


def test_a_baseline_trained_in_another_checkout_is_the_same_start(models, resources, tmp_path):
    moved = tmp_path / "baseline"  # as if trained where the backbones lay in another resources folder
    shutil.copytree(models["baseline"], moved)
    record = json.loads((moved / "training.json").read_text())
    record["backbone"]["location"] = record["first_stage"]["backbone"] = "/elsewhere/resources/backbones/tiny"
    (moved / "training.json").write_text(json.dumps(record))
    assert main(train_args("deebert", resources, tmp_path / "m", "--finetuned-from", str(moved))) == 0
