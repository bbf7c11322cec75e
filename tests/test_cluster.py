"""The workflow on a real SLURM cluster: the tiny workflow through `profiles/slurm` on the one-node cluster of
`tests/cluster/slurm_up.sh`. `.ci/run` starts that cluster where it can and sets FASTEXIT_SLURM; elsewhere
this test is skipped with the reason."""

import copy
import os
import re
import subprocess
import time

import pandas as pd
import pytest
import yaml

from fastexit_bench.experiments.settings import SCHEMA, experiment_settings, load_config
from fastexit_bench.reporting.build import TABLE_PARTS
from tests.test_workflow import ROOT, TINY, snakemake, snakemake_command

pytestmark = pytest.mark.skipif(
    not os.environ.get("FASTEXIT_SLURM"),
    reason="no SLURM cluster started (.ci/run starts one with tests/cluster/slurm_up.sh)",
)

LOCAL_RULES = ("stage_data", "probe_backbone", "claims", "leaderboard", "all")
# README's cluster command with the test cluster's partition and no account; job states from squeue (no
# accounting), checked every 5 s instead of 40 (tiny jobs); a failed job is not resubmitted, so that the run
# with the cancelled job fails and its rerun is what finishes the workflow
SLURM = [
    "--executor",
    "slurm",
    "--default-resources",
    "slurm_partition=main",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--jobs",
    "4",
    "--retries",
    "0",
]
SMALL_NODE_MEMORY_MB = 2000  # every mem_mb the profile asks for, cut to what a small test machine can grant
MEASURED = re.compile(r"realized|time saving b")  # timings differ between any two runs
CANCELLED = ("bbc_news", "deebert", "0")  # the training job that is cancelled mid-run


def cluster_config() -> dict:
    """The tiny workflow on one dataset, trained long enough (3 epochs of 256 rows, ~2 s) to be cancelled
    between its checkpoints."""
    config = copy.deepcopy(TINY)
    config["experiments"]["tiny"].update(datasets=["bbc_news"], max_train=256, epochs=3)
    return config


def profile_for_a_small_node(folder):
    """The committed profile with its memory requests cut to the test machine's; everything else as committed."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    for resources in profile["set-resources"].values():
        resources["mem_mb"] = SMALL_NODE_MEMORY_MB
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def slurm_job(job_id: str) -> dict[str, str]:
    """What SLURM recorded about a job (kept for MinJobAge after it ends)."""
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    )
    return dict(field.split("=", 1) for field in shown.stdout.split() if "=" in field)


def submitted(log: str) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", log)


def cancel_training_mid_run(workdir, run: subprocess.Popen) -> str:
    """Cancel CANCELLED's training job once it has written its first checkpoint; return its job id."""
    dataset, recipe, seed = CANCELLED
    checkpoint = workdir / "results" / "tiny" / "models" / dataset / recipe / f"seed{seed}" / "train.ckpt"
    deadline = time.monotonic() + 600
    while not checkpoint.exists():
        assert run.poll() is None and time.monotonic() < deadline, "the training job never wrote a checkpoint"
        time.sleep(0.05)
    queue = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True).stdout
    [job_id] = [
        line.split()[0]
        for line in queue.splitlines()
        if line.split()[1].startswith("rule_train_") and recipe in line and dataset in line
    ]
    subprocess.run(["scancel", job_id], check=True)
    return job_id


def test_the_tiny_workflow_runs_as_slurm_jobs_survives_a_cancelled_job_and_matches_a_local_run(tmp_path):
    for name in ("local", "cluster"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.yaml").write_text(yaml.safe_dump(cluster_config()))
    local = snakemake(tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]

    workdir = tmp_path / "cluster"
    profile = ["--workflow-profile", str(profile_for_a_small_node(tmp_path / "profile"))]
    command = snakemake_command(workdir, *profile, *SLURM)
    started = time.monotonic()
    with open(tmp_path / "first.log", "w") as log, subprocess.Popen(command, stdout=log, stderr=log) as first:
        cancelled = cancel_training_mid_run(workdir, first)
        first.wait(timeout=900)
    first_log = (tmp_path / "first.log").read_text()
    assert first.returncode != 0, first_log[-3000:]
    assert slurm_job(cancelled)["JobState"] == "CANCELLED"
    assert not list((workdir / "results" / "tables").glob("tiny*")), "a table was written by the failed run"

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    print(f"cluster runs: {time.monotonic() - started:.0f} s; cancelled job {cancelled}")
    slurm_log = workdir / ".snakemake" / "slurm_logs" / "rule_train" / "tiny_{}_{}_{}".format(*CANCELLED)
    assert (slurm_log / f"{cancelled}.log").is_file(), "SLURM's log of a failed job is kept where README says"
    assert (
        "resuming from"
        in (workdir / "logs" / "tiny" / "train" / "{}.{}.seed{}.log".format(*CANCELLED)).read_text()
    )

    # every non-local job went through sbatch, and SLURM granted what the profile asks for
    jobs = {
        job_id: slurm_job(job_id) for job_id in submitted(first_log) + submitted(rerun.stdout + rerun.stderr)
    }
    print("SLURM job ids:", " ".join(jobs))
    rules = [re.match(r"rule_([a-z_]+?)_wildcards", job["Comment"]).group(1) for job in jobs.values()]
    counts = experiment_settings(load_config(workdir / "tiny.yaml", ROOT / SCHEMA), "tiny").job_counts()
    expected = {rule: n for rule, n in counts.items() if rule not in LOCAL_RULES}
    assert sum(expected.values()) == 15
    assert {rule: rules.count(rule) for rule in set(rules)} == {**expected, "train": expected["train"] + 1}
    for rule, job in zip(rules, jobs.values()):
        assert job["JobState"] == ("CANCELLED" if job is jobs[cancelled] else "COMPLETED")
        assert job["CPUs/Task"] == "1"  # the config's threads (an exclusive job holds all the node's CPUs)
        assert job["MinMemoryNode"] == f"{SMALL_NODE_MEMORY_MB}M"
        assert "TresPerJob" not in job, "the CPU-only default asks for no GPU"
        assert (job["OverSubscribe"] == "NO") == (rule == "latency"), (
            "only latency jobs have the node to themselves"
        )
    asked = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["set-resources"]
    assert {rule: job["TimeLimit"] for rule, job in zip(rules, jobs.values())} == {
        rule: "{:02d}:{:02d}:00".format(*divmod(asked[rule]["runtime"], 60)) for rule in expected
    }

    for part in TABLE_PARTS:
        tables = [
            pd.read_csv(tmp_path / name / "results" / "tables" / f"tiny{part}.csv")
            for name in ("local", "cluster")
        ]
        tables = [t.drop(columns=[c for c in t.columns if MEASURED.search(c)]) for t in tables]
        pd.testing.assert_frame_equal(*tables)
    assert sorted(p.name for p in (workdir / "logs" / "tiny" / "train").glob("*.log")) == [
        f"bbc_news.{recipe}.seed0.log" for recipe in ("baseline", "deebert", "fastbert")
    ]

    # a GPU job asks for one the way the plugin expects (the test node declares one; the job runs on the CPU)
    dataset, recipe, seed = CANCELLED
    timing = f"results/tiny/latency/{dataset}.{recipe}.seed{seed}.json"
    gpu = snakemake(workdir, *profile, *SLURM, "--config", "gpu=1", "--force", timing)
    assert gpu.returncode == 0, gpu.stderr[-3000:]
    [gpu_job] = submitted(gpu.stdout + gpu.stderr)
    assert slurm_job(gpu_job)["TresPerJob"] == "gres:gpu:1"
