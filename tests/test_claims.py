"""Claims as data: a claim's verdict follows its goals on the reports' points; the command writes md + json."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fastexit_bench.cli import main
from fastexit_bench.reporting.claims import (
    MET,
    MISSED,
    NOT_RUN,
    PROVISIONAL,
    UNSETTLED,
    Claim,
    ClaimSet,
    check_all,
    evaluate,
    published_claims,
    realized_claims,
)

CLAIM = Claim(
    "c",
    "FastBERT >= 2x at <= 1 pt",
    "test",
    "quick",
    "bbc_news",
    "fastbert",
    "speed",
    max_loss=1.0,
    min_flops_speedup=2.0,
    min_time_saving=0.3,
)


def _points(delta: float = -0.5, speedup: float = 2.5, realized: float = 2.2, **extra) -> pd.DataFrame:
    row = {
        "experiment": "quick",
        "dataset": "bbc_news",
        "split": "test",
        "recipe": "fastbert",
        "pooling": "",
        "setting": "speed, dev drop<=1pt",
        "policy": "speed",
        "value": 0.4,
        "seed": 0,
        "backbone": "minilm-l6",
        "metric": "accuracy",
        "score": 0.95,
        "delta_points": delta,
        "delta_points_low": delta - 2,
        "delta_points_high": delta + 2,
        "speedup": speedup,
        "speedup_fastbert": speedup,
        "realized_b1": realized,
        "realized_b32": realized,
        "realized_over_predicted_b1": realized / speedup,
        "realized_over_predicted_b32": realized / speedup,
        "degenerate": False,
        **extra,
    }
    untimed = {
        "realized_b1": None,
        "realized_b32": None,
        "realized_over_predicted_b1": None,
        "realized_over_predicted_b32": None,
    }  # latency is measured on the first seed only
    return pd.DataFrame([row, {**row, "seed": 1, **untimed}, {**row, "seed": 2, **untimed}])


def test_a_claim_is_met_only_when_every_goal_holds():
    assert evaluate(CLAIM, _points())["verdict"] == MET
    missed = evaluate(CLAIM, _points(delta=-1.5, speedup=1.8))
    assert missed["verdict"] == MISSED and missed["seeds"] == 3
    assert [name for name, ok in missed["checks"].items() if not ok] == [
        "metric change >= -1 pt",
        "FLOPs speed-up >= 2x",
    ]
    slow = evaluate(CLAIM, _points(realized=1.2))  # 1 - 1/1.2 = 17% measured time saving
    assert slow["verdict"] == MISSED and not slow["checks"]["measured time saving b1 >= 30%"]
    assert evaluate(CLAIM, _points(degenerate=True))["verdict"] == MISSED
    assert evaluate(CLAIM, _points().assign(setting="speed=0.5"))["verdict"] == NOT_RUN


def test_a_claim_met_on_fewer_seeds_or_missed_by_one_seed_is_not_called_met():
    assert evaluate(CLAIM, _points().query("seed < 2"))["verdict"] == PROVISIONAL  # two seeds of three
    one_seed_short = _points()
    one_seed_short.loc[one_seed_short.seed == 2, "delta_points"] = -1.6  # the mean, -0.87, still meets it
    settled = evaluate(CLAIM, one_seed_short)
    assert settled["verdict"] == UNSETTLED and settled["seeds_missing_a_goal"] == [2]
    assert settled["seed_sd"]["delta_points"] == pytest.approx(pd.Series([-0.5, -0.5, -1.6]).std())
    assert settled["seed_sd"]["flops_speedup"] == 0.0


def test_a_benchmark_mean_claim_reads_the_mean_over_its_datasets_on_seeds_that_ran_them_all():
    claim = Claim(
        "g", "mean >= 1.3x", "test", "quick", ["rte", "stsb"], "fastbert", "speed", min_flops_speedup=1.3
    )
    rte = _points(delta=-0.4, speedup=1.2).assign(dataset="rte")
    stsb = _points(delta=-1.2, speedup=1.6).assign(dataset="stsb")
    both = evaluate(claim, pd.concat([rte, stsb]))
    assert both["verdict"] == MET and both["seeds"] == 3 and both["value"] is None
    assert both["flops_speedup"] == pytest.approx(1.4) and both["delta_points"] == pytest.approx(-0.8)
    assert evaluate(claim, rte)["verdict"] == NOT_RUN  # a mean over one of its datasets is not the claim
    short = evaluate(claim, pd.concat([rte, stsb.query("seed < 2")]))  # seed 2 ran RTE only
    assert short["seeds"] == 2 and short["verdict"] == PROVISIONAL


def test_early_exit_beats_static_only_when_the_paired_interval_is_above_zero():
    claim = Claim("s", "beats static", "test", "quick", "bbc_news", "fastbert", "speed", beats_static=True)
    static = {"static_alternative": "layer 2", "gain_vs_static_points": 1.5}
    met = evaluate(
        claim, _points(delta=-3.0, gain_vs_static_points_low=0.2, gain_vs_static_points_high=2.8, **static)
    )
    assert met["verdict"] == MET and met["static_alternative"] == "layer 2"  # a loss budget is not its goal
    missed = evaluate(
        claim, _points(gain_vs_static_points_low=-0.4, gain_vs_static_points_high=3.4, **static)
    )
    assert missed["verdict"] == MISSED
    assert evaluate(claim, _points())["verdict"] == MISSED  # never measured: not called met


def test_realized_over_predicted_is_checked_for_rows_that_save_enough():
    rule = {"min": 0.85, "for_speedup_at_least": 2.0, "batch_sizes": [1, 32]}
    checks = realized_claims(_points(speedup=2.5, realized=2.0), rule)
    assert [(c["batch_size"], c["verdict"]) for c in checks] == [(1, MISSED), (32, MISSED)]  # 2.0 / 2.5 = 0.8
    assert [c["verdict"] for c in realized_claims(_points(speedup=2.5, realized=2.25), rule)] == [MET, MET]
    assert realized_claims(_points(speedup=1.5), rule) == []


def test_published_claims_carry_the_papers_relative_numbers():
    claims = {c.id: c for c in published_claims(1.0)}
    book = claims["paper-fastbert-book_review"]
    assert book.setting == "speed=0.5" and book.convention == "fastbert"
    assert book.min_flops_speedup == pytest.approx(21785247744 / 5170940327, abs=0.01)
    assert book.max_loss == pytest.approx(1.0 + 100 * (0.8688 - 0.8664))  # the paper's own loss plus 1 point


def test_the_claims_command_writes_markdown_and_json(tmp_path, capsys):
    points = tmp_path / "quick_points.csv"
    _points().to_csv(points, index=False)
    (tmp_path / "quick.json").write_text("{}")  # the report's record, which claims needs beside its points
    out = tmp_path / "claims"
    assert main(["claims", "--points", str(points), "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in record["claims"]}
    assert verdicts["quick-fastbert"] == MET  # the suite's own claims file: 2.5x at -0.5 pt, three seeds
    assert verdicts["quick-deebert"] == NOT_RUN  # no deebert among the points
    assert "deebert-sst2" not in verdicts  # claims of experiments not given are left out
    markdown = out.with_suffix(".md").read_text()
    assert "| quick-fastbert |" in markdown and "nan" not in markdown  # FastBERT's branch names no pooling
    (tmp_path / "in_the_way.md").mkdir()
    assert main(["claims", "--points", str(points), "--out", str(tmp_path / "in_the_way")]) == 2
    bad = tmp_path / "bad_points.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["claims", "--points", str(bad), "--out", str(tmp_path / "c2")]) == 2
    assert "not a report's NAME_points.csv with its record" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["claims", "--points", str(bad), "--out", str(tmp_path / "c2")]) == 2
    assert "lack columns" in capsys.readouterr().err


def test_the_suites_claims_file_loads():
    claims = ClaimSet.load()
    assert {c.experiment for c in claims.claims} >= {"quick", "sst2_minilm", "ag_news_minilm", "chinese_me5"}


def test_the_committed_reference_claims_are_what_the_committed_points_give():
    """results/reference/claims.json is generated, never typed: checking the committed points again gives the
    same verdicts and numbers."""
    reference = Path(__file__).resolve().parents[1] / "results" / "reference"
    points = sorted((reference / "tables").glob("*_points.csv"))
    committed = json.loads((reference / "claims.json").read_text())
    record = check_all(pd.concat([pd.read_csv(p) for p in points], ignore_index=True), ClaimSet.load())
    assert [(c["id"], c["verdict"]) for c in record.claims] == [
        (c["id"], c["verdict"]) for c in committed["claims"]
    ]
    for mine, theirs in zip(record.claims, committed["claims"]):
        assert mine.get("flops_speedup") == pytest.approx(theirs.get("flops_speedup"))
        assert mine.get("delta_points") == pytest.approx(theirs.get("delta_points"))
    assert sorted((r["id"], r["verdict"]) for r in record.realized) == sorted(
        (r["id"], r["verdict"]) for r in committed["realized"]
    )
