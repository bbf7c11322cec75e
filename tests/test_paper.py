"""Paper-layout tables: operating points, deltas against the baseline, FastBERT's FLOPs convention, and
the published numbers with their sources."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.flops import flops_for
from fastexit_bench.analysis.operating_points import OperatingPointSpec, choose, measure
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import sweep
from fastexit_bench.errors import FastExitError
from fastexit_bench.reporting import paper
from tests.test_sweep import artifact

POLICIES = {name: resolve_policy(name) for name in ("entropy", "speed", "static")}


def model_artifacts(recipe, seed, split="validation"):
    art = artifact(seed=seed)
    return dataclasses.replace(art, metadata=dataclasses.replace(art.metadata, recipe=recipe, split=split))


def selection(recipe, seed, spec, degenerate=False):
    """What `sweep` writes to OUT.selection.csv for one model (dev reported on itself)."""
    dev = model_artifacts(recipe, seed)
    return measure(dev, choose(sweep(dev, list(POLICIES.values())), "accuracy", spec), POLICIES).assign(
        degenerate=degenerate
    )


def test_fixed_and_dev_chosen_operating_points():
    dev = model_artifacts("deebert", 0)
    spec = OperatingPointSpec({"speed": (0.1, 0.5)}, (0.0, 5.0))
    points = paper.paper_points(
        pd.concat([selection(r, 0, spec) for r in ("baseline", "fastbert", "deebert")])
    )
    by_recipe = points.groupby("recipe", sort=False)
    assert by_recipe.get_group("baseline")[["setting", "policy", "value"]].values.tolist() == [
        ["full depth", "static", 4.0]
    ]
    fastbert = by_recipe.get_group("fastbert").setting.tolist()  # dev-chosen speeds too: where a claim holds
    assert fastbert[-2:] == ["speed=0.1", "speed=0.5"] and set(fastbert[:-2]) <= {
        "speed, dev drop<=0pt",
        "speed, dev drop<=5pt",
    }
    chosen = by_recipe.get_group("deebert")
    assert chosen.setting.tolist() == ["entropy, dev drop<=0pt", "entropy, dev drop<=5pt"]
    full = dev.predictions.labels == dev.predictions.logits[-1].argmax(-1)
    for value, points_allowed in zip(chosen.value, (0.0, 5.0)):
        exits = resolve_policy("entropy").exit_layers(dev.predictions, value)
        right = dev.predictions.logits[exits - 1, np.arange(len(exits))].argmax(-1) == dev.predictions.labels
        assert 100 * (full.mean() - right.mean()) <= points_allowed + 1e-9


def test_rows_against_the_same_seeds_baseline_in_both_flops_counts():
    spec = OperatingPointSpec(max_drop=(1.0,))
    chosen = pd.concat(
        [selection(recipe, seed, spec) for recipe in ("baseline", "deebert") for seed in (0, 1)]
    )
    points = paper.against_baseline(paper.paper_points(chosen), "baseline")
    base = points[points.recipe == "baseline"]
    assert base.delta_points.tolist() == [0.0, 0.0] and base.speedup.tolist() == [1.0, 1.0]
    deebert = points[points.recipe == "deebert"].iloc[0]
    assert deebert.delta_points == pytest.approx(100 * (deebert.score - base.score.iloc[0]))
    assert deebert.speedup == pytest.approx(base.flops.iloc[0] / deebert.flops)
    table = paper.paper_table(paper.with_latency(points, None), paper.TableSpec("deebert"))
    assert table.model.tolist() == ["baseline", "deebert: entropy, dev drop<=1pt"]
    assert table.seeds.tolist() == [2, 2] and table.examples.tolist() == [200, 200]
    score, delta = table["accuracy [95% CI]"].iloc[1], table["Δ vs baseline (pt) [95% CI]"].iloc[1]
    assert re.fullmatch(r"0\.\d{3} ± 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", score)
    low, high = map(float, re.search(r"\[(\S+), (\S+)\]", delta).groups())
    assert low < float(delta.split()[0]) < high and delta.endswith(" ns") == (low <= 0 <= high)
    assert table["flags"].tolist() == ["", ""]
    without_baseline = points[points.recipe != "baseline"].drop(columns=["delta_points", "speedup"])
    with pytest.raises(FastExitError, match="add 'baseline'"):
        paper.against_baseline(without_baseline, "baseline")


def test_fastbert_rows_are_measured_against_its_own_model_at_full_depth():
    """FastBERT's "BERT" row is the FastBERT model's teacher: the reference is fastbert's full depth."""
    spec = OperatingPointSpec({"speed": (0.5,)}, ())
    chosen = pd.concat([selection(recipe, 0, spec) for recipe in ("truncated-2", "fastbert")])
    points = paper.against_baseline(paper.paper_points(chosen, "fastbert"), "fastbert")
    teacher = points[(points.recipe == "fastbert") & (points.setting == "full depth")].iloc[0]
    assert teacher.delta_points == 0.0 and teacher.speedup == 1.0
    student = points[points.setting == "speed=0.5"].iloc[0]
    assert student.delta_points == pytest.approx(100 * (student.score - teacher.score))
    truncated = points[points.recipe == "truncated-2"].iloc[0]
    assert truncated.speedup == pytest.approx(teacher.flops / truncated.flops)
    assert paper.paper_points(chosen).setting.tolist() == [
        "full depth",
        "speed=0.5",
    ]  # no reference: as before


def test_measured_speedups_join_by_model_and_setting():
    points = pd.DataFrame(
        {
            "dataset": ["sst2"] * 2,
            "recipe": ["baseline", "deebert"],
            "seed": [0, 0],
            "setting": ["full depth", "entropy, dev drop<=1pt"],
            "speedup": [1.0, 2.0],
        }
    )
    latency = pd.DataFrame(
        {
            "dataset": ["sst2"] * 2,
            "recipe": ["deebert"] * 2,
            "seed": [0, 0],
            "setting": ["entropy, dev drop<=1pt"] * 2,
            "batch_size": [1, 32],
            "realized_speedup": [1.6, 1.25],
            "realized_over_predicted": [0.8, 0.625],
        }
    )
    joined = paper.with_latency(points, latency)
    assert np.isnan(joined.realized_b1.iloc[0]) and joined.realized_b1.iloc[1] == 1.6
    assert joined.realized_over_predicted_b32.iloc[1] == 0.625
    assert joined.realized_saving_b32.iloc[1] == pytest.approx(0.2) and joined.time_saving.iloc[1] == 0.5


def test_published_numbers_carry_their_source_and_the_papers_own_delta():
    bert = "google-bert/bert-base-chinese"
    fastbert = paper.published_for("book_review", "fastbert", "speed", 0.5, "accuracy", bert)
    assert fastbert["paper_score"] == 0.8664
    assert fastbert["paper_delta_points"] == pytest.approx(-0.24)
    assert fastbert["paper_speedup"] == pytest.approx(21785247744 / 5170940327)
    assert "FastBERT" in fastbert["paper_source"]
    assert paper.published_for("book_review", "fastbert", "speed", 0.8, "accuracy", bert) is None
    pabee = paper.published_for("rte", "pabee", "patience", 6.0, "accuracy", "albert/albert-base-v2")
    assert pabee["paper_speedup"] == 1.57 and pabee["paper_delta_points"] == pytest.approx(1.5)
    sources, rows = paper.published()
    assert all(row["source"] in sources for row in rows)
    assert all(
        any(
            r["recipe"] == "baseline"
            and (r["source"], r["dataset"], r.get("backbone"))
            == (row["source"], row["dataset"], row.get("backbone"))
            for r in rows
        )
        for row in rows
    )


def test_published_numbers_of_another_backbone_family_are_only_noted():
    assert [
        paper.backbone_family(b)
        for b in (
            "google-bert/bert-base-uncased",
            "bert-base-chinese",
            "albert/albert-base-v2",
            "FacebookAI/roberta-base",
            "minilm-l6",
        )
    ] == ["bert-base", "bert-base", "albert-base", "roberta-base", "minilm-l6"]
    assert paper.published_for("book_review", "fastbert", "speed", 0.5, "accuracy", "me5-small") is None
    assert (
        paper.published_for("rte", "pabee", "patience", 6.0, "accuracy", "google-bert/bert-base-uncased")
        is None
    )
    points = pd.DataFrame(
        {
            "dataset": ["book_review"],
            "recipe": ["fastbert"],
            "policy": ["speed"],
            "value": [0.5],
            "backbone": ["me5-small"],
        }
    )
    [note] = paper.other_backbone_notes(points)
    assert "other backbone (bert-base, ours me5-small)" in note and "0.8664" in note


def test_a_model_trained_on_part_of_the_published_data_is_noted():
    """A subset (max_train) or a partial local copy: the note gives the rows; all of the data, or counts from
    before artefacts recorded them, say nothing."""

    def trained_on(rows, published, seed=0):
        art = artifact(seed=seed)
        meta = dataclasses.replace(
            art.metadata, dataset="qnli", train_rows=rows, published_train_rows=published
        )
        return dataclasses.replace(art, metadata=meta)

    [note] = paper.partial_data_notes([trained_on(8999, 99743), trained_on(9001, 99743, seed=1)])
    assert (
        note.startswith("qnli: trained on 8,999 of 99,743 published training rows")
        and "different data" in note
    )
    assert paper.partial_data_notes([trained_on(95000, 99743), trained_on(None, None), artifact()]) == []


def test_unknown_layout_is_refused():
    with pytest.raises(FastExitError, match="layout 'table2'"):
        paper.TableSpec("table2")


def test_a_model_no_better_than_the_majority_class_is_flagged_in_the_paper_table():
    spec = OperatingPointSpec(max_drop=(1.0,))
    chosen = pd.concat([selection("baseline", 0, spec), selection("deebert", 0, spec, degenerate=True)])
    table = paper.paper_table(
        paper.with_latency(paper.against_baseline(paper.paper_points(chosen), "baseline"), None),
        paper.TableSpec("deebert"),
    )
    assert table["flags"].tolist() == ["", "majority-class"]
    assert table["Δ vs baseline (pt) [95% CI]"].iloc[0] == "0.0"  # the reference against itself: no interval


def test_deltas_against_the_same_examples_get_a_paired_interval():
    """FastBERT at speed 0.5 against its own full depth: the paired interval is the bootstrap of the per-example
    difference, narrower than combining the two standard errors, and contains the Δ."""
    spec = OperatingPointSpec({"speed": (0.5,)}, ())
    chosen = pd.concat([selection("fastbert", 0, spec), selection("baseline", 0, spec)])
    unpaired = paper.against_baseline(paper.paper_points(chosen, "fastbert"), "fastbert")
    artifacts = [model_artifacts(recipe, 0) for recipe in ("fastbert", "baseline")]
    paired = paper.paired_deltas(unpaired, "fastbert", artifacts)
    row = paired.setting.tolist().index("speed=0.5")
    width = paired.delta_points_high - paired.delta_points_low
    assert width[row] < (unpaired.delta_points_high - unpaired.delta_points_low)[row]
    assert paired.delta_points_low[row] <= paired.delta_points[row] <= paired.delta_points_high[row]
    full = paired.setting.tolist().index("full depth")
    assert np.isnan(paired.delta_points_low[full])  # the reference against itself has no interval
    assert paper.paired_deltas(unpaired, "fastbert", []).equals(unpaired)  # no artefacts: unpaired as before


def _scored(recipe, split, data_seed):
    """A model's artefact on one split, with every exit's metric (what evaluate records and dev is read for)."""
    art = dataclasses.replace(artifact(seed=0, data_seed=data_seed), metadata=None)
    meta = dataclasses.replace(
        artifact().metadata,
        recipe=recipe,
        split=split,
        layer_metrics=art.predictions.layer_metrics(["accuracy"]),
    )
    return dataclasses.replace(art, metadata=meta)


def test_early_exit_points_are_compared_with_the_best_static_alternative_at_no_more_flops():
    """DeeBERT at its dev-chosen point against what costs no more without deciding per example: its own static
    exits and the baseline, the best of them on dev; the gain is measured on test with a paired interval."""
    arts = {
        (r, s): _scored(r, s, seed)
        for r, seed in (("deebert", 1), ("baseline", 2))
        for s in ("validation", "test")
    }
    spec = OperatingPointSpec(max_drop=(1.0, 20.0))
    chosen = pd.concat(
        measure(
            arts[r, "test"],
            choose(sweep(arts[r, "validation"], list(POLICIES.values())), "accuracy", spec),
            POLICIES,
        ).assign(degenerate=False)
        for r in ("deebert", "baseline")
    )
    points = paper.with_static_alternative(
        paper.against_baseline(paper.paper_points(chosen), "baseline"), list(arts.values())
    )
    early = points[points.recipe == "deebert"]
    assert len(early) == 2 and (points[points.recipe == "baseline"].static_alternative == "").all()
    dev_scores = [m["accuracy"] for m in arts["deebert", "validation"].metadata.layer_metrics]
    test = arts["deebert", "test"].predictions
    flops = flops_for(arts["deebert", "test"].metadata)
    for row in early.itertuples():
        assert row.static_alternative_flops <= row.flops
        layer = int(row.static_alternative.split()[1])  # the baseline costs more than any point here
        lengths = arts["deebert", "test"].lengths
        cost = [
            2 * flops.per_example(np.full(len(lengths), k), lengths, "nothing").mean() for k in range(1, 5)
        ]
        affordable = [k for k in range(1, 5) if cost[k - 1] <= row.flops]
        assert layer in affordable and dev_scores[layer - 1] == max(dev_scores[k - 1] for k in affordable)
        static_score = (test.predictions()[layer - 1] == test.labels).mean()
        assert row.gain_vs_static_points == pytest.approx(100 * (row.score - static_score))
        assert row.gain_vs_static_points_low <= row.gain_vs_static_points <= row.gain_vs_static_points_high
