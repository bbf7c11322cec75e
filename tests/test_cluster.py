"""The workflow on a real SLURM cluster: the tiny workflow through `profiles/slurm` on the one-node cluster of
`tests/cluster/slurm_up.sh`. `.ci/run` starts that cluster where it can and sets FASTEXIT_SLURM; elsewhere
this test is skipped with the reason."""

import copy
import os
import re

import pandas as pd
import pytest
import yaml

from fastexit_bench.experiments.settings import SCHEMA, experiment_settings, job_counts, load_config
from tests.test_workflow import ROOT, TINY, snakemake

pytestmark = pytest.mark.skipif(not os.environ.get("FASTEXIT_SLURM"),
                                reason="no SLURM cluster started (.ci/run starts one with tests/cluster/slurm_up.sh)")

LOCAL_RULES = ("stage_data", "probe_backbone", "all")
# a small machine cannot grant the profile's memory requests; partition and account come from the command line
SLURM = ["--workflow-profile", str(ROOT / "profiles" / "slurm"), "--executor", "slurm", "--jobs", "4",
         "--slurm-no-account", "--slurm-status-command", "squeue",
         "--default-resources", "slurm_partition=main", "mem_mb=1500", "runtime=30",
         "--set-resources", "train:mem_mb=3000", "evaluate:mem_mb=2000", "latency:mem_mb=2000"]
MEASURED = re.compile(r"realized|time saving b")  # timings differ between any two runs


def test_the_tiny_workflow_runs_as_slurm_jobs_and_matches_a_local_run(tmp_path):
    config = copy.deepcopy(TINY)
    config["experiments"]["tiny"]["datasets"] = ["bbc_news"]
    runs = {}
    for name in ("local", "cluster"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tiny.yaml").write_text(yaml.safe_dump(config))
        runs[name] = snakemake(tmp_path / name, *(SLURM if name == "cluster" else []))
        assert runs[name].returncode == 0, runs[name].stderr[-3000:]
    log = runs["cluster"].stdout + runs["cluster"].stderr
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", log)
    counts = job_counts(experiment_settings(load_config(tmp_path / "cluster" / "tiny.yaml", ROOT / SCHEMA), "tiny"))
    assert len(set(submitted)) == sum(n for rule, n in counts.items() if rule not in LOCAL_RULES) == 15
    for part in ("", "_layers", "_calibration", "_exits", "_paper"):
        tables = [pd.read_csv(tmp_path / name / "results" / "tables" / f"tiny{part}.csv") for name in runs]
        tables = [t.drop(columns=[c for c in t.columns if MEASURED.search(c)]) for t in tables]
        pd.testing.assert_frame_equal(*tables)
    assert sorted(p.name for p in (tmp_path / "cluster" / "logs" / "tiny" / "train").glob("*.log")) == [
        f"bbc_news.{recipe}.seed0.log" for recipe in ("baseline", "deebert", "fastbert")]
