"""A tiny end-to-end run of the workflow (tiny random BERT, BBC News from PyPI, a few dozen examples)
through every experiment rule: stage, train, evaluate, sweep, report."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fastexit_bench.experiments.settings import SCHEMA, experiment_settings, load_config
from fastexit_bench.reporting.build import TABLE_PARTS
from fastexit_bench.reporting.plots import REPORT_PLOTS

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "prepare": [],
    "threads": 1,
    "dataset_dirs": [
        str(ROOT / "tests" / "user_datasets")
    ],  # shop_reviews: a user's CSV declared outside the package
    "experiments": {
        "tiny": {
            "datasets": ["bbc_news", "shop_reviews"],
            "backbone": "tiny-bert",
            "recipes": ["baseline", "deebert", "fastbert"],
            "policies": ["entropy", "patience", "max_prob"],
            "seeds": [0],
            "max_train": 64,
            "max_eval": 32,
            "max_length": 32,
            "epochs": 1,
            "lr": 1e-3,
            "batch_size": 16,
            "stages": {"deebert": {"offramps": {"lr": 5e-3}}},
            "table": {"layout": "fastbert", "values": {"speed": [0.1, 0.5]}},
            "latency_examples": 8,
        }
    },
    "default_experiments": ["tiny"],
}


def snakemake_command(workdir: Path, *args: str, config: str = "tiny.yaml") -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / config),
        "--cores",
        "2",
        *args,
    ]


def snakemake(workdir: Path, *args: str, config: str = "tiny.yaml") -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_command(workdir, *args, config=config),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    """The tiny workflow, its configured paths holding spaces (each must reach the commands as one argument)."""
    workdir = tmp_path_factory.mktemp("workflow")
    shutil.copytree(ROOT / "tests" / "user_datasets", workdir / "user datasets")
    spaced = {"dataset_dirs": [str(workdir / "user datasets")], "resources": "resources with space"}
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY | spaced))
    done = snakemake(workdir)
    if done.returncode != 0:
        logs = "\n".join(
            f"== {p}\n{p.read_text()[-2000:]}" for p in sorted((workdir / "logs").rglob("*.log"))
        )
        pytest.fail(f"snakemake failed:\n{done.stderr[-3000:]}\n{logs}")
    return workdir


def test_every_rule_ran_and_the_tables_parse(workflow_run):
    assert (workflow_run / "resources with space" / "backbones" / "tiny-bert").is_dir()  # the configured path
    tables = workflow_run / "results" / "tables"
    summary = pd.read_csv(tables / "tiny.csv")
    assert set(summary.recipe) == {"baseline", "deebert", "fastbert"}
    assert set(summary.dataset) == {"bbc_news", "shop_reviews"}
    assert {"entropy", "patience", "max_prob", "static", "oracle"} <= set(summary.policy)
    assert {"gain_vs_static_pt", "full_depth", "examples", "flags"} <= set(summary.columns)
    assert summary.full_depth.str.fullmatch(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]").all()
    layers = pd.read_csv(tables / "tiny_layers.csv")
    assert [c for c in layers.columns if c.startswith("layer_")] == [f"layer_{k}" for k in range(1, 5)]
    assert not any("nan" in (tables / f"tiny{part}.md").read_text() for part in TABLE_PARTS)
    exits = pd.read_csv(tables / "tiny_exits.csv")
    assert {"deebert", "fastbert"} == {m.split(":")[0] for m in exits.model}
    assert exits["examples exiting here"].notna().any()  # texts stored by evaluate
    assert (tables / "tiny.md").read_text().startswith("# tiny: exit policies")
    assert "\\begin{tabular}" in (tables / "tiny.tex").read_text()
    for name in ("metric_vs_flops", "exit_shares", "layer_metric", "method_fronts"):
        for suffix in (".png", ".pdf"):
            assert (workflow_run / "results" / "plots" / "tiny" / f"{name}{suffix}").stat().st_size > 1000
    claims = json.loads((workflow_run / "results" / "claims.json").read_text())  # no claim names tiny
    assert claims["claims"] == [] and (workflow_run / "results" / "claims.md").read_text().startswith(
        "# Claims"
    )
    points = pd.read_csv(tables / "tiny_points.csv")
    assert set(points.experiment) == {"tiny"} and {"speedup", "delta_points", "realized_b1"} <= set(
        points.columns
    )
    record = json.loads((tables / "tiny.json").read_text())
    assert record["provenance"]["git_commit"] and len(record["provenance"]["inputs"]) == 2 * (
        3 * 4 + 6 + 2
    )  # sweep files, artefacts, timings


def test_paper_table_has_every_operating_point_and_measured_speedups(workflow_run):
    table = pd.read_csv(workflow_run / "results" / "tables" / "tiny_paper.csv")
    assert set(table.dataset) == {"bbc_news", "shop_reviews"}
    table = table[table.dataset == "bbc_news"]
    deebert, fastbert = (
        table[table.model.str.startswith("deebert")],
        table[table.model.str.startswith("fastbert")],
    )
    assert table.model.iloc[0] == "baseline ([CLS])"  # tiny-bert pools by [CLS]; FastBERT's branch names none
    assert deebert.model.tolist() == [f"deebert ([CLS]): entropy, dev drop<={p}pt" for p in (0, 1, 2)]
    assert fastbert.model.tolist()[-2:] == ["fastbert: speed=0.1", "fastbert: speed=0.5"]
    assert set(table.split) == {"test"} and table["speed-up (fvcore)"].iloc[0] == 1.0
    early = table[~table.model.str.startswith("baseline")]
    assert early["realized speed-up b1"].notna().all() and early["realized speed-up b32"].notna().all()
    timing = json.loads(
        (workflow_run / "results" / "tiny" / "latency" / "bbc_news.fastbert.seed0.json").read_text()
    )
    assert {row["batch_size"] for row in timing["rows"]} == {1, 32} and timing["examples"] == 8


def test_each_result_has_its_page(workflow_run):
    """One HTML page per experiment holds every table (reported split first) and every figure with its caption;
    the claims and the leaderboard have theirs."""
    results = workflow_run / "results"
    page = (results / "tables" / "tiny.html").read_text()
    titles = [re.search(r"<h2>(.*?)</h2>", page[m.start() :]).group(1) for m in re.finditer("<section", page)]
    assert titles[0].startswith("tiny: paper layout") and "tiny: exit policies (selection split)" in titles
    assert page.count("<figure>") == len(REPORT_PLOTS.names()) and page.count("<figcaption><p>") == len(
        REPORT_PLOTS.names()
    )
    assert "experiment tiny" in page and "{{" not in page  # captions rendered for this experiment
    assert "<h1>Claims</h1>" in (results / "claims.html").read_text()


def chromium() -> str | None:
    return next(
        (
            shutil.which(name)
            for name in ("chromium", "chromium-headless-shell", "google-chrome")
            if shutil.which(name)
        ),
        None,
    )


def test_report_opens_on_the_results(workflow_run):
    """`snakemake --report`'s first screen names the claims and each experiment's results page (rendered by
    headless Chromium: the report is a React app, its text exists only once scripts ran)."""
    report = workflow_run / "report.html"
    done = snakemake(workflow_run, "--report", str(report))
    assert done.returncode == 0, done.stderr[-2000:]
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium here (apt install chromium-headless-shell) to render the report")
    shown = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    text = re.sub(r"<[^>]+>", " ", shown)
    assert "fastexit-bench: results" in text
    for name in ("claims.html", "tiny.html"):
        assert name in text, name
    assert "paper layout on the reported split" in text and "System Message" not in text


def test_paper_experiments_dry_run_with_hub_backbones(workflow_run, mirror):
    done = snakemake(
        workflow_run,
        "-n",
        "-p",
        "results/tables/fastbert_table2.md",
        "--config",
        f"data_mirror={mirror}",
        config=str(ROOT / "config" / "config.yaml"),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "--backbone google-bert/bert-base-chinese" in done.stdout  # Chinese datasets
    assert "--recipe distilled-1" in done.stdout and re.search(r"^train\s+48$", done.stdout, re.MULTILINE)
    planned = experiment_settings(
        load_config(ROOT / "config" / "config.yaml", ROOT / SCHEMA), "fastbert_table2"
    ).job_counts()
    counted = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.MULTILINE)}
    assert {rule: counted.get(rule, 0) for rule in planned} == planned  # `fastexit-bench plan` counts these


BAD_CONFIGS = [  # (key in experiments.tiny, value, what the dry run says before any job)
    ("epoch", 2, "Additional properties are not allowed ('epoch' was unexpected)"),  # typo of "epochs"
    ("datasets", ["bbc_new"], "config experiments.tiny: unknown dataset 'bbc_new'. Did you mean bbc_news?"),
    (
        "backbone",
        "minilm-l7",
        "config experiments.tiny: unknown backbone 'minilm-l7'. Did you mean minilm-l6?",
    ),
    (
        "policies",
        ["entropy", "my_pkg.policies:Margin"],
        "config experiments.tiny: cannot load policy 'my_pkg.policies:Margin': No module named 'my_pkg'",
    ),
    ("table", {"reference": "pabee"}, "table.reference 'pabee' is not among its recipes"),
]


def test_rerun_has_nothing_to_do_and_bad_config_fails_clearly(workflow_run):
    assert "Nothing to be done" in snakemake(workflow_run, "-n").stdout
    for key, value, message in BAD_CONFIGS:
        bad = yaml.safe_load((workflow_run / "tiny.yaml").read_text())
        tiny = bad["experiments"]["tiny"]
        tiny[key] = {**tiny[key], **value} if isinstance(value, dict) else value
        (workflow_run / "bad.yaml").write_text(yaml.safe_dump(bad))
        failed = snakemake(workflow_run, "-n", config="bad.yaml")
        assert failed.returncode != 0 and message in failed.stdout + failed.stderr, key


PAPER_EXPERIMENTS = (
    "deebert_table1",
    "deebert_table1_roberta",
    "fastbert_table2",
    "pabee_glue",
    "berxit_glue",
)


def test_each_paper_experiment_runs_with_its_preset(tmp_path):
    """The paper experiments of config/config.yaml, as defined there (preset, recipes, policies, table), on
    tiny-bert and a few dozen BBC News rows; the models are trained with the preset's settings."""
    real = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]
    tiny_stages = {"fastbert": {"self-distillation": {"epochs": 1, "schedule_epochs": 1}}}
    experiments = {
        name: {
            **real[name],
            "datasets": ["bbc_news"],
            "backbone": "tiny-bert",
            "max_train": 32,
            "max_eval": 16,
            "max_length": 32,
            "epochs": 1,
            "latency_examples": 0,
            "stages": tiny_stages,
            "recipes": [r for r in real[name]["recipes"] if r not in ("distilled-6", "distilled-3")],
        }
        for name in PAPER_EXPERIMENTS
    }
    config = {
        "prepare": [],
        "threads": 1,
        "experiments": experiments,
        "default_experiments": list(experiments),
    }
    (tmp_path / "papers.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, config="papers.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    for name in PAPER_EXPERIMENTS:
        assert (tmp_path / "results" / "tables" / f"{name}_paper.md").is_file(), name
    fastbert = pd.read_csv(tmp_path / "results" / "tables" / "fastbert_table2_paper.csv")
    assert fastbert.model.tolist()[:2] == [
        "distilled-1 ([CLS])",
        "fastbert: full depth",
    ]  # FastBERT's "BERT" row
    deebert = json.loads(
        (
            tmp_path
            / "results"
            / "deebert_table1"
            / "models"
            / "bbc_news"
            / "deebert"
            / "seed0"
            / "training.json"
        ).read_text()
    )
    assert (
        deebert["train_config"]["batch_size"],
        deebert["train_config"]["keep"],
        deebert["train_config"]["frozen"],
        deebert["train_config"]["warmup"],
    ) == (8, "last", "train", 0)
    assert not deebert["stages"][1]["cached_features"]  # dropout on in the frozen backbone
    sweep = pd.read_csv(tmp_path / "results" / "deebert_table1" / "sweeps" / "bbc_news.deebert.seed0.csv")
    assert sorted(sweep[sweep.policy == "entropy"].value.unique()) == pytest.approx(
        [0, 0.001, 0.005, 0.01, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    )


def test_a_dataset_without_any_copy_is_named_by_the_dry_run_and_stops_the_run_before_any_job(tmp_path):
    (tmp_path / "empty").mkdir()
    config = {
        "prepare": [],
        "data_mirror": str(tmp_path / "empty"),
        "default_experiments": ["paper"],
        "experiments": {
            "paper": {"datasets": ["book_review"], "backbone": "tiny-bert", "recipes": ["baseline"]}
        },
    }
    (tmp_path / "nocopy.yaml").write_text(yaml.safe_dump(config))
    line = "cannot run here: dataset 'book_review' has no local copy"
    dry = snakemake(tmp_path, "-n", config="nocopy.yaml")
    said = dry.stdout + dry.stderr
    assert dry.returncode == 0 and line in said and "Traceback" not in said  # the plan, and why
    done = snakemake(tmp_path, config="nocopy.yaml")
    said = done.stdout + done.stderr
    assert done.returncode != 0 and line in said and "Traceback" not in said
    assert not (tmp_path / "results").exists()  # before any job
