"""A tiny end-to-end run of the workflow (tiny random BERT, BBC News from PyPI, a few dozen examples)
through every experiment rule: stage, train, evaluate, sweep, report."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "prepare": [],
    "threads": 1,
    "dataset_dirs": [str(ROOT / "tests" / "user_datasets")],  # shop_reviews: a user's CSV declared outside the package
    "experiments": {"tiny": {
        "datasets": ["bbc_news", "shop_reviews"], "backbone": "tiny-bert", "recipes": ["baseline", "deebert", "fastbert"],
        "policies": ["entropy", "patience", "max_prob"], "seeds": [0], "max_train": 64, "max_eval": 32,
        "max_length": 32, "epochs": 1, "lr": 1e-3, "batch_size": 16, "stages": {"deebert": {"offramps": {"lr": 5e-3}}},
        "table": {"layout": "fastbert", "values": {"speed": [0.1, 0.5]}}, "latency_examples": 8,
    }},
    "default_experiments": ["tiny"],
}


def snakemake(workdir: Path, *args: str, config: str = "tiny.yaml") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
               "--configfile", str(workdir / config), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    done = snakemake(workdir)
    if done.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-2000:]}" for p in sorted((workdir / "logs").rglob("*.log")))
        pytest.fail(f"snakemake failed:\n{done.stderr[-3000:]}\n{logs}")
    return workdir


def test_every_rule_ran_and_the_tables_parse(workflow_run):
    tables = workflow_run / "results" / "tables"
    summary = pd.read_csv(tables / "tiny.csv")
    assert set(summary.recipe) == {"baseline", "deebert", "fastbert"}
    assert set(summary.dataset) == {"bbc_news", "shop_reviews"}
    assert {"entropy", "patience", "max_prob", "static", "oracle"} <= set(summary.policy)
    assert "auc_vs_static" in summary.columns
    layers = pd.read_csv(tables / "tiny_layers.csv")
    assert [c for c in layers.columns if c.startswith("layer_")] == [f"layer_{k}" for k in range(1, 5)]
    assert (tables / "tiny.md").read_text().startswith("# tiny: exit policies")
    assert "\\begin{tabular}" in (tables / "tiny.tex").read_text()
    for name in ("metric_vs_flops", "exit_shares", "layer_metric"):
        for suffix in (".png", ".pdf"):
            assert (workflow_run / "results" / "plots" / "tiny" / f"{name}{suffix}").stat().st_size > 1000
    record = json.loads((tables / "tiny.json").read_text())
    assert record["provenance"]["git_commit"] and len(record["provenance"]["inputs"]) == 2 * (3 * 4 + 6 + 2)  # sweep files, artefacts, timings


def test_paper_table_has_every_operating_point_and_measured_speedups(workflow_run):
    table = pd.read_csv(workflow_run / "results" / "tables" / "tiny_paper.csv")
    assert set(table.dataset) == {"bbc_news", "shop_reviews"}
    table = table[table.dataset == "bbc_news"]
    assert table.model.tolist() == ["baseline", *(f"deebert: entropy, dev drop<={p}pt" for p in (0, 1, 2)),
                                    "fastbert: speed=0.1", "fastbert: speed=0.5"]
    assert set(table.split) == {"test"} and table["speed-up (fvcore)"].iloc[0] == 1.0
    early = table[table.model != "baseline"]
    assert early["realized speed-up b1"].notna().all() and early["realized speed-up b32"].notna().all()
    timing = json.loads((workflow_run / "results" / "tiny" / "latency" / "bbc_news.fastbert.seed0.json").read_text())
    assert {row["batch_size"] for row in timing["rows"]} == {1, 32} and timing["examples"] == 8


def test_report_gathers_the_plots(workflow_run):
    done = snakemake(workflow_run, "--report", str(workflow_run / "report.html"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (workflow_run / "report.html").stat().st_size > 10_000


def test_paper_experiments_dry_run_with_hub_backbones(workflow_run):
    done = snakemake(workflow_run, "-n", "-p", "results/tables/fastbert_table2.md",
                     config=str(ROOT / "config" / "config.yaml"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--backbone google-bert/bert-base-chinese" in done.stdout  # Chinese datasets
    assert "--recipe truncated-1" in done.stdout and re.search(r"^train\s+60$", done.stdout, re.MULTILINE)


def test_rerun_has_nothing_to_do_and_bad_config_fails_clearly(workflow_run):
    assert "Nothing to be done" in snakemake(workflow_run, "-n").stdout
    bad = yaml.safe_load((workflow_run / "tiny.yaml").read_text())
    bad["experiments"]["tiny"]["epoch"] = 2  # typo of "epochs"
    (workflow_run / "bad.yaml").write_text(yaml.safe_dump(bad))
    failed = snakemake(workflow_run, "-n", config="bad.yaml")
    assert failed.returncode != 0
    assert "Additional properties are not allowed ('epoch' was unexpected)" in failed.stdout + failed.stderr
    bad = yaml.safe_load((workflow_run / "tiny.yaml").read_text())
    bad["experiments"]["tiny"]["datasets"] = ["bbc_new"]  # typo of a dataset: refused before any job
    (workflow_run / "bad.yaml").write_text(yaml.safe_dump(bad))
    failed = snakemake(workflow_run, "-n", config="bad.yaml")
    assert failed.returncode != 0
    assert "config experiments.tiny: unknown dataset 'bbc_new'. Did you mean bbc_news?" in failed.stdout + failed.stderr
