"""Sweeps over a saved artefact: metrics at the exit layer, FLOPs, selection, scores, and the CLI with a
policy defined outside the package."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, LayerOutputs
from fastexit_bench.analysis.flops import AnalyticFlops
from fastexit_bench.analysis.operating_points import Target, select
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import scores, sweep
from fastexit_bench.cli import main
from fastexit_bench.errors import RecordError
from fastexit_bench.locations import ResolvedBackbone

ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_layers": 4,
    "head": "highway",
    "num_outputs": 2,
    "embedding_size": 32,
}


def artifact(seed=0, examples=200, layers=4, split="validation", data_seed=None):
    """Exits that get more accurate with depth: layer k is right with probability 0.5 + 0.1 k; ``seed`` is the
    model's training seed, ``data_seed`` (default: seed) draws the outputs."""
    rng = np.random.default_rng(seed if data_seed is None else data_seed)
    labels = rng.integers(0, 2, examples)
    logits = np.zeros((layers, examples, 2))
    for k in range(layers):
        right = rng.random(examples) < 0.5 + 0.1 * (k + 1)
        predicted = np.where(right, labels, 1 - labels)
        logits[k, np.arange(examples), predicted] = rng.uniform(0.1, 4.0, examples)
    meta = ArtifactMetadata(
        dataset="sst2",
        split=split,
        task="classification",
        metrics=["accuracy"],
        recipe="deebert",
        backbone=ResolvedBackbone("tiny", "tiny", "test"),
        seed=seed,
        architecture=ARCH,
    )
    outputs = LayerOutputs(logits.astype(np.float32), "classification", labels=labels)
    return ExitArtifact(outputs, rng.integers(5, 60, examples), meta)


def test_sweep_rows_match_a_direct_computation():
    art = artifact()
    table = sweep(art, [resolve_policy("entropy"), resolve_policy("static")])
    assert len(table) == 13 + 4
    flops = AnalyticFlops(ARCH)
    full = flops.full_depth(4, art.lengths).mean()
    for _, row in table.iterrows():
        exits = resolve_policy(row.policy).exit_layers(art.predictions, row.value)
        predicted = art.predictions.logits[exits - 1, np.arange(200)].argmax(-1)
        assert row.accuracy == pytest.approx((predicted == art.predictions.labels).mean())
        assert row.mean_exit_layer == pytest.approx(exits.mean())
        shares = [row[f"exit_share_{k}"] for k in range(1, 5)]
        assert shares == pytest.approx(np.bincount(exits, minlength=5)[1:] / 200)
        reads = "logits" if row.policy == "entropy" else "nothing"
        assert row.macs_per_example == pytest.approx(flops.per_example(exits, art.lengths, reads).mean())
        assert row.flops_per_example == pytest.approx(2 * row.macs_per_example)
        assert row.flops_per_example_padded >= row.flops_per_example
        assert row.speedup == pytest.approx(full / row.macs_per_example)
    last = table[(table.policy == "static") & (table.value == 4)].iloc[0]
    assert last.relative_flops == pytest.approx(1.0) and last.flops_source == "analytic"


def test_heads_on_the_way_cost_flops():
    flops, n = AnalyticFlops(ARCH), np.array([10.0])
    layer_3 = flops.per_example(np.array([3]), n, "nothing")
    assert flops.per_example(np.array([3]), n, "logits") == pytest.approx(layer_3 + 2 * flops.head(n))
    assert flops.per_example(np.array([3]), n, "exit_scores") == pytest.approx(layer_3 + 3 * flops.scorer(n))
    assert flops.layer(np.array([20.0])) > 2 * flops.layer(n)  # attention grows with n^2


def test_selection_picks_the_fastest_value_within_the_drop():
    table = pd.DataFrame(
        {
            "policy": ["static"] * 3 + ["p"] * 3,
            "value": [1, 2, 3, 0.1, 0.5, 0.9],
            "accuracy": [0.70, 0.80, 0.90, 0.899, 0.88, 0.60],
            "speedup": [3.0, 1.5, 1.0, 1.2, 2.0, 2.9],
        }
    )
    chosen = select(
        table, "accuracy", [Target("max_drop", 0.5), Target("max_drop", 2.0), Target("min_speedup", 1.9)]
    )
    picks = chosen[chosen.policy == "p"].set_index("target").value.to_dict()
    assert picks == {"drop<=0.5pt": 0.1, "drop<=2pt": 0.5, "speedup>=1.9x": 0.5}


def test_scores_rank_static_at_zero_and_oracle_above_best_first():
    table = sweep(artifact(), [resolve_policy(n) for n in ("max_prob", "static", "oracle")])
    ranking = scores(table, "accuracy")
    assert ranking.policy.iloc[0] == "oracle" and ranking.gain_vs_static.is_monotonic_decreasing
    ranking = ranking.set_index("policy")
    assert ranking.loc["static", "gain_vs_static"] == 0.0
    assert 0 < ranking.loc["oracle", "gain_vs_static"] <= 100


PLUGIN = '''
    import numpy as np
    from fastexit_bench.analysis.policies import ExitPolicy

    class Margin(ExitPolicy):
        """Exit when the top-2 probability margin exceeds the threshold."""
        name = "margin"
        def grid(self, outputs):
            return [0.2, 0.5, 0.8]
        def exit_mask(self, outputs, value):
            top = np.sort(outputs.probabilities(), axis=-1)
            return top[..., -1] - top[..., -2] > value
'''


def test_cli_sweeps_a_policy_defined_outside_the_package(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_policies.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    artifact().save(tmp_path / "dev.npz")
    artifact(data_seed=1, split="test").save(tmp_path / "test.npz")
    out = tmp_path / "out" / "sweep.csv"
    code = main(
        [
            "sweep",
            str(tmp_path / "dev.npz"),
            "--policies",
            "entropy,speed,patience,max_prob,my_policies:Margin",
            "--grid",
            "entropy=0.1,0.3",
            "--test",
            str(tmp_path / "test.npz"),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(out)
    assert set(table.policy) == {"entropy", "speed", "patience", "max_prob", "margin", "static", "oracle"}
    assert table[table.policy == "entropy"].value.tolist() == [0.1, 0.3]
    assert table[table.policy == "margin"].value.tolist() == [0.2, 0.5, 0.8]
    selection = pd.read_csv(out.with_suffix(".selection.csv"))
    assert {"test_accuracy", "test_speedup", "dev_accuracy"} <= set(selection.columns)
    assert "margin" in set(pd.read_csv(out.with_suffix(".scores.csv")).policy)
    assert json.loads(out.with_suffix(".json").read_text())["provenance"]["inputs"]


BROKEN = """
    from fastexit_bench.analysis.policies import ExitPolicy

    class Broken(ExitPolicy):
        name = "broken"
        def grid(self, outputs):
            return [0.5, 0.0]
        def exit_mask(self, outputs, value):
            return outputs.probabilities().max(-1) > 1 / value
"""


def test_an_exception_inside_a_user_policy_names_the_policy_and_the_value(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_policies.py").write_text(textwrap.dedent(BROKEN))
    monkeypatch.syspath_prepend(str(tmp_path))
    artifact().save(tmp_path / "dev.npz")
    assert (
        main(
            [
                "sweep",
                str(tmp_path / "dev.npz"),
                "--policies",
                "broken_policies:Broken",
                "--out",
                str(tmp_path / "s.csv"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        "fastexit-bench: error: policy 'broken' raised ZeroDivisionError at threshold 0.0: float division by "
        "zero; fix the policy or leave it out of the policies to sweep"
    )
    assert not (tmp_path / "s.csv").exists()


def test_cli_errors_are_one_line(tmp_path, capsys):
    artifact().save(tmp_path / "dev.npz")
    for args, message in [
        (["--policies", "patience", "--grid", "patience=-1"], "patience must be a whole number"),
        (["--policies", "speed", "--grid", "speed=2"], "outside [0.0, 1.0]"),
        (["--policies", "nowhere.mod:X"], "cannot load policy"),
        (["--policies", "learned"], "train it with --recipe berxit"),
    ]:
        assert main(["sweep", str(tmp_path / "dev.npz"), *args, "--out", str(tmp_path / "s.csv")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    (tmp_path / "bad.npz").write_text("not an artefact")
    assert main(["sweep", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "is not an evaluation artefact" in capsys.readouterr().err


@pytest.mark.parametrize(
    "test, message",
    [
        ({"seed": 1, "split": "test"}, "not from the same model (seed 0 vs 1)"),
        ({"split": "validation", "data_seed": 1}, "are both split 'validation'"),
    ],
)
def test_sweep_refuses_a_test_artefact_of_another_model_or_the_same_split(tmp_path, capsys, test, message):
    artifact().save(tmp_path / "dev.npz")
    artifact(**test).save(tmp_path / "test.npz")
    out = tmp_path / "sweep.csv"
    assert (
        main(["sweep", str(tmp_path / "dev.npz"), "--test", str(tmp_path / "test.npz"), "--out", str(out)])
        == 2
    )
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "out, message",
    [
        ("dev.npz", "a sweep's output is a .csv"),  # its own input
        ("sweep.json", "a sweep's output is a .csv"),  # the record would replace the table
        ("folder.csv", "is a folder"),
    ],
)
def test_sweep_refuses_outputs_that_would_destroy_something(tmp_path, capsys, out, message):
    artifact().save(tmp_path / "dev.npz")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "folder.csv" / "notes.txt").write_text("keep me")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["sweep", str(tmp_path / "dev.npz"), "--out", str(tmp_path / out)]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_non_finite_outputs_are_refused_when_written_and_when_read(tmp_path):
    broken = artifact()
    broken.predictions.logits[2, 5] = np.nan
    with pytest.raises(RecordError, match=r"logits are not finite at layers \[3\]"):
        broken.save(tmp_path / "nan.npz")
    assert not (tmp_path / "nan.npz").exists()
    np.savez_compressed(
        tmp_path / "nan.npz",
        metadata=np.array(json.dumps(broken.metadata.to_dict())),
        logits=broken.predictions.logits,
        lengths=broken.lengths,
    )
    with pytest.raises(RecordError, match="not finite"):
        ExitArtifact.load(tmp_path / "nan.npz")


def test_policy_table_shows_untrained_exits_as_static_only(tmp_path):
    from fastexit_bench.analysis.operating_points import OperatingPointSpec
    from fastexit_bench.analysis.sweep_artifact import sweep_artifact
    from fastexit_bench.reporting.tables import UNTRAINED_EXITS, policy_summary

    results = {}
    for recipe in ("baseline", "deebert"):
        dev = artifact()
        dev.metadata.recipe = recipe
        dev.save(tmp_path / f"{recipe}.npz")
        results[recipe] = sweep_artifact(
            tmp_path / f"{recipe}.npz", None, ["entropy", "patience"], {}, OperatingPointSpec(), {}, log=print
        )
    summary = policy_summary(list(results.values())).set_index(["recipe", "policy"])
    assert list(summary.loc["baseline"].index) == ["static"]  # a baseline's earlier heads were never trained
    assert UNTRAINED_EXITS in summary.loc[("baseline", "static"), "flags"]
    assert {"entropy", "patience", "static", "oracle"} <= set(summary.loc["deebert"].index)
