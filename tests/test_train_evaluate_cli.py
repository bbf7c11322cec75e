"""``train`` then ``evaluate`` through the CLI on a tiny backbone; the artefact matches a manual forward."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertModel

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.cli import main
from fastexit_bench.data.loading import load_split
from fastexit_bench.models.backbones import resolve_backbone
from fastexit_bench.models.heads import HEADS

TRAIN = [
    "--dataset",
    "bbc_news",
    "--backbone",
    "tiny-bert",
    "--max-train",
    "64",
    "--max-eval",
    "16",
    "--max-length",
    "32",
    "--epochs",
    "2",
    "--max-steps",
    "3",
    "--batch-size",
    "8",
    "--lr",
    "1e-3",
    "--device",
    "cpu",
    "--precision",
    "fp32",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, resources):
    out = tmp_path_factory.mktemp("model") / "berxit"
    assert (
        main(["train", *TRAIN, "--recipe", "berxit", "--resources", str(resources), "--out", str(out)]) == 0
    )
    return out


def test_train_writes_weights_and_a_complete_record(trained):
    info = json.loads((trained / "training.json").read_text())
    assert not (trained / "train.ckpt").exists()
    assert info["model"] == {
        "backbone": "tiny-bert",
        "head": "highway",
        "num_outputs": 5,
        "num_layers": None,
        "learned_exit": True,
        "scorer_input": "pooled",
        "pooling": "cls",
    }  # tiny-bert: [CLS]
    assert info["recipe"] == "berxit" and info["dataset"] == "bbc_news"
    assert info["exit_policy"] == "learned"  # the recipe's paper policy travels with the model
    (stage,) = info["stages"]
    assert [e["epoch"] for e in stage["epochs"]] == [1] and stage["epochs"][0]["steps"] == 3
    confidence = stage["epochs"][0]["confidence"]  # how sure the final exit is on dev
    assert 1 / 5 <= confidence["mean_top_probability"] <= 1 and 0 <= confidence["share_under_speed_0.5"] <= 1
    assert len(info["dev_metric"]["per_layer"]) == 4
    assert info["provenance"]["git_commit"]
    assert info["execution"] == {
        "precision": "fp32",
        "attention": "sdpa",
        "runtime": "eager",
    }  # auto: sdpa in fp32
    assert info["format_version"] == 1 and info["train_config"]["group_by_length"]
    hygiene = info["data"]["hygiene"]
    assert hygiene["train"]["rows"] == 64 and hygiene["validation"]["shared_with_train"] == 0


def test_evaluate_samples_as_many_rows_as_training_scored_dev_on_by_default(trained, resources, tmp_path):
    out = tmp_path / "test.npz"
    common = ["--resources", str(resources), "--device", "cpu", "--split", "test", "--out", str(out)]
    assert main(["evaluate", str(trained), *common]) == 0
    assert ExitArtifact.load(out).predictions.logits.shape[1] == 16  # the --max-eval 16 it was trained with
    assert main(["evaluate", str(trained), *common, "--max-eval", "5", "--overwrite"]) == 0
    assert ExitArtifact.load(out).predictions.logits.shape[1] == 5


def test_artifact_layer_k_equals_manual_forward_through_k_layers(trained, resources, tmp_path, capsys):
    out = tmp_path / "validation.npz"
    assert (
        main(
            [
                "evaluate",
                str(trained),
                "--max-eval",
                "6",
                "--resources",
                str(resources),
                "--device",
                "cpu",
                "--precision",
                "fp32",
                "--attention",
                "eager",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "layer" in capsys.readouterr().out
    artifact = ExitArtifact.load(out)
    meta = artifact.metadata.to_dict()
    assert (meta["dataset"], meta["split"], meta["recipe"], meta["seed"]) == (
        "bbc_news",
        "validation",
        "berxit",
        0,
    )
    assert meta["provenance"]["env"]["torch"] and len(meta["layer_metrics"]) == 4
    assert meta["exit_policy"] == "learned"  # and with its artefacts (sweep records copy the metadata)
    assert meta["execution"] == {"precision": "fp32", "attention": "eager", "runtime": "eager"}
    assert meta["architecture"]["hidden_size"] == 32 and meta["architecture"]["num_layers"] == 4
    assert artifact.predictions.logits.shape == (4, 6, 5)
    assert artifact.predictions.exit_scores.shape == (4, 6)

    location = resolve_backbone("tiny-bert", resources).location
    weights = load_file(str(trained / "model.safetensors"))
    backbone = BertModel.from_pretrained(location, attn_implementation="eager").eval()
    backbone.load_state_dict(
        {
            k.replace("layers.", "encoder.layer."): v
            for k, v in weights.items()
            if k.startswith(("embeddings.", "layers."))
        },
        strict=False,
    )
    texts = load_split("bbc_news", "validation", max_examples=6, seed=0).frame["text_a"].tolist()
    assert artifact.texts.tolist() == [t[:120] for t in texts]  # the artefact says which input is which
    encoded = AutoTokenizer.from_pretrained(location)(
        texts, truncation=True, max_length=32, padding=True, return_tensors="pt"
    )
    np.testing.assert_array_equal(artifact.lengths, encoded["attention_mask"].sum(1).numpy())
    with torch.no_grad():
        hidden = backbone(**encoded, output_hidden_states=True).hidden_states
        for k in range(1, 5):
            head = HEADS.get("highway")(32, 5).eval()
            head.load_state_dict(
                {n.split(".", 2)[2]: v for n, v in weights.items() if n.startswith(f"heads.{k - 1}.")}
            )
            manual = head(hidden[k], encoded["attention_mask"].bool()).numpy()
            np.testing.assert_allclose(artifact.predictions.logits[k - 1], manual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("recipe", ["truncated-2", "distilled-2"])
def test_two_layer_baselines_save_and_evaluate_two_layers(resources, tmp_path, recipe):
    """A distilled student starts from teacher layers 1 and 4 of 4 but is saved as a plain 2-layer model; both
    keep the pooling they were asked for."""
    out = tmp_path / recipe
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--recipe",
                recipe,
                "--pooling",
                "mean",
                "--resources",
                str(resources),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    info = json.loads((out / "training.json").read_text())
    assert info["model"]["num_layers"] == 2 and len(info["dev_metric"]["per_layer"]) == 2
    assert info["model"]["pooling"] == "mean"
    assert (
        main(
            [
                "evaluate",
                str(out),
                "--resources",
                str(resources),
                "--max-eval",
                "4",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "exits.npz"),
            ]
        )
        == 0
    )
    artifact = ExitArtifact.load(tmp_path / "exits.npz")
    assert artifact.predictions.num_layers == 2 and artifact.metadata.exit_pooling == "mean"


def test_fastbert_refuses_mean_pooling(resources, tmp_path, capsys):
    """FastBERT's branch reads [CLS] after its own attention: an explicit mean is a clear error, auto is [CLS]."""
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--recipe",
                "fastbert",
                "--pooling",
                "mean",
                "--resources",
                str(resources),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 2
    )
    assert "branch head attends over all tokens" in capsys.readouterr().err


def test_outputs_that_would_destroy_a_model_are_refused(trained, resources, tmp_path, capsys):
    """`evaluate m --out m` used to delete the model folder; now nothing is written and nothing deleted unless
    --overwrite is given, and an input is never replaced."""
    victim = tmp_path / "victim"
    shutil.copytree(trained, victim)
    for folder in ("sub", "sub.npz"):
        (victim / folder).mkdir()
        (victim / folder / "notes.txt").write_text("keep me")
    before = sorted(str(p) for p in victim.rglob("*"))
    in_the_way = "is a folder; give a file path to write (the folder is left as it is), or pass --overwrite"
    refused = (
        (victim, [], "is also an input"),
        (victim, ["--overwrite"], "is also an input"),
        (victim / "model.safetensors", ["--overwrite"], "is also an input"),
        (victim / "notes.txt", [], "this output is a .npz file; give a path ending in .npz"),
        (victim / "sub.npz", [], in_the_way),
    )
    for out, options, message in refused:
        assert (
            main(["evaluate", str(victim), "--resources", str(resources), "--out", str(out), *options]) == 2
        )
        assert message in capsys.readouterr().err
    assert sorted(str(p) for p in victim.rglob("*")) == before
    assert (
        main(
            [
                "evaluate",
                str(victim),
                "--resources",
                str(resources),
                "--max-eval",
                "4",
                "--out",
                str(victim / "sub.npz"),
                "--overwrite",
            ]
        )
        == 0
    )
    assert (victim / "sub.npz").is_file() and (victim / "sub" / "notes.txt").is_file()

    (tmp_path / "a_file").write_text("x")
    train = ["train", *TRAIN, "--recipe", "baseline", "--resources", str(resources), "--out"]
    assert main([*train, str(tmp_path / "a_file")]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "x"
    assert main([*train, str(victim)]) == 2
    assert "already holds a trained model (training.json); pass --overwrite" in capsys.readouterr().err
    assert (victim / "model.safetensors").read_bytes() == (trained / "model.safetensors").read_bytes()


def test_bad_training_inputs(resources, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                *TRAIN,
                "--recipe",
                "truncated-9",
                "--resources",
                str(resources),
                "--out",
                str(tmp_path / "t9"),
            ]
        )
        == 2
    )
    assert "cannot keep 9 layers of a 4-layer backbone" in capsys.readouterr().err
    assert main(["train", *TRAIN, "--recipe", "deebrt", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean deebert" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "is not a finished model" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_a_rerun_on_the_same_machine_gives_the_same_model_and_artefact(tmp_path, resources, precision):
    """Train and evaluate twice with the same arguments: the weights and every array of the artefact are
    identical, bit for bit (``auto`` is bf16 where the CPU runs it natively); only provenance differs."""
    runs = []
    for name in ("first", "second"):
        model, artefact = tmp_path / name, tmp_path / f"{name}.npz"
        options = ["--resources", str(resources), "--device", "cpu", "--precision", precision]
        train = [a for a in TRAIN if a not in ("--precision", "fp32")]
        assert main(["train", *train, "--recipe", "deebert", *options, "--out", str(model)]) == 0
        assert main(["evaluate", str(model), "--max-eval", "8", *options, "--out", str(artefact)]) == 0
        runs.append((load_file(model / "model.safetensors"), ExitArtifact.load(artefact)))
    (weights, first), (again, second) = runs
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)
    assert np.array_equal(first.predictions.logits, second.predictions.logits)
    assert np.array_equal(first.predictions.labels, second.predictions.labels)
    assert np.array_equal(first.lengths, second.lengths)
    unlike = {"provenance", "model_dir"}
    assert {k: v for k, v in first.metadata.to_dict().items() if k not in unlike} == {
        k: v for k, v in second.metadata.to_dict().items() if k not in unlike
    }
