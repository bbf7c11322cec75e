"""Exits under distribution shift: operating points chosen on a model's own selection split, measured on its own
reported split and on other datasets with the same labels (`evaluate --dataset`, `sweep --test`).

    python benchmarks/shift.py MODEL --shifted shopping,weibo --mirror ../shared/data \\
        --work /tmp/shift --out results/benchmarks/shift_chnsenticorp_fastbert.json

For each reported set and each operating point of the paper policy (the point estimate within 1 point on dev,
and the risk-controlled one): the realized change against full depth on that set, with its interval, the
speed-up and the share of examples leaving at each exit; and each set's per-exit calibration error. A
threshold calibrated in one domain keeps its promise in another when the realized change stays within the
budget there too. Prints a table; writes the JSON with provenance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.cli import main
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.io import write_json
from fastexit_bench.models.saved import read_record
from fastexit_bench.reporting.tables import calibration_table, paper_policy

TARGETS = ("drop<=1pt", "risk<=1pt")


def run_cli(*argv: str) -> None:
    status = main(list(argv))
    if status:
        raise SystemExit(status)


def exit_shares(artifact: ExitArtifact, policy: str, value: float) -> list[float]:
    """The share of ``artifact``'s examples leaving at each exit under ``policy`` at ``value``."""
    exits = resolve_policy(policy).exit_layers(artifact.predictions, value)
    return (np.bincount(exits, minlength=artifact.predictions.num_layers + 1)[1:] / len(exits)).tolist()


def rows_for(artifact: ExitArtifact, selection: pd.DataFrame) -> list[dict]:
    """Each in-domain operating point of the paper policy, measured on ``artifact`` (its ``selection`` rows)."""
    metric = artifact.metadata.headline_metric
    full = artifact.metadata.layer_metrics[-1][metric]
    policy = paper_policy(artifact.metadata.recipe)
    rows = []
    for point in selection[(selection.policy == policy) & selection.target.isin(TARGETS)].itertuples():
        rows.append(
            {
                "reported_on": f"{artifact.metadata.dataset}/{artifact.metadata.split}",
                "operating_point": point.setting,
                "value": float(point.value),
                "dev_change_pt": 100 * (point.dev_accuracy - point.dev_full_accuracy),
                "full_depth": full,
                "at_point": getattr(point, f"test_{metric}"),
                "change_pt": 100 * (getattr(point, f"test_{metric}") - full),
                "change_interval_pt": [
                    100 * (getattr(point, f"test_{metric}_low") - full),
                    100 * (getattr(point, f"test_{metric}_high") - full),
                ],
                "speedup": point.test_speedup,
                "exit_shares": exit_shares(artifact, point.policy, point.value),
                "examples": int(point.test_examples),
            }
        )
    return rows


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model folder from `fastexit-bench train`")
    parser.add_argument("--shifted", required=True, help="comma-separated datasets with the model's labels")
    parser.add_argument("--mirror", required=True)
    parser.add_argument("--work", type=Path, required=True, help="folder for the artefacts and sweeps")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-eval", default="1000", help="examples per evaluated split")
    args = parser.parse_args(argv)
    record = read_record(args.model)
    common = ["--mirror", args.mirror, "--max-eval", args.max_eval]
    args.work.mkdir(parents=True, exist_ok=True)
    dev = args.work / "dev.npz"
    own = DATASETS.get(record.dataset)
    run_cli(
        "evaluate", str(args.model), "--split", own.selection_split, *common, "--out", str(dev), "--overwrite"
    )
    reported = {"own": ["--split", own.reported_split]}
    reported |= {
        name: ["--dataset", name, "--split", DATASETS.get(name).reported_split]
        for name in args.shifted.split(",")
    }
    rows, artifacts = [], []
    for name, options in reported.items():
        path = args.work / f"{name}.npz"
        run_cli("evaluate", str(args.model), *options, *common, "--out", str(path), "--overwrite")
        sweep = args.work / f"{name}.csv"
        run_cli("sweep", str(dev), "--test", str(path), "--risk", "1", "--out", str(sweep), "--overwrite")
        artifact = ExitArtifact.load(path)
        artifacts.append(artifact)
        rows += rows_for(artifact, pd.read_csv(sweep.with_suffix(".selection.csv")))
    calibration = calibration_table(artifacts)
    table = pd.DataFrame(rows)
    shown = table.assign(
        change=[
            f"{c:+.1f} [{lo:+.1f}, {hi:+.1f}]"
            for c, (lo, hi) in zip(table.change_pt, table.change_interval_pt)
        ],
        exit_shares=[" ".join(f"{s:.2f}" for s in shares) for shares in table.exit_shares],
    )[
        [
            "reported_on",
            "operating_point",
            "value",
            "dev_change_pt",
            "full_depth",
            "change",
            "speedup",
            "exit_shares",
        ]
    ]
    print(shown.to_markdown(index=False, floatfmt=".3g"))
    ece = calibration[
        ["dataset", "split"] + [c for c in calibration.columns if c.startswith("ece_") and c[4:].isdigit()]
    ]
    print(ece.to_markdown(index=False, floatfmt=".3f"))
    write_json(
        args.out,
        {
            "provenance": provenance.collect(config={k: str(v) for k, v in vars(args).items()}),
            "model": {"dataset": record.dataset, "recipe": record.recipe, "seed": record.seed},
            "rows": rows,
            "calibration": ece.to_dict("records"),
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run()
