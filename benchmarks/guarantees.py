"""Does a threshold chosen on the selection split keep its promise on new data? (issue "Guarantees")

For every committed reference early-exit model (its paper policy; calibrated policies aside, since they refit
on each sample): the selection and reported examples are pooled and re-split at random, ``--splits`` times,
into a selection sample of the original size and a test sample of the rest. On each selection sample two rules
choose a value: the papers' point estimate (the fastest value within δ points of full depth) and the
risk-controlled rule (``analysis.risk``: harm rate <= δ with probability >= 1 - ε, fixed-sequence binomial
tests). On the test sample: the accuracy drop against full depth, whether it exceeds δ (a violation), and the
layer speed-up (layers / mean exit layer). Goal: the risk-controlled rule's violation rate <= ε on every
model; the point estimate's rate is reported beside it. Classification models only: the risk is a rate of
answers that early exit makes wrong, which a regression answer (STS-B) never is exactly.

    python benchmarks/guarantees.py --out results/benchmarks/guarantees.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact, LayerOutputs
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.risk import Candidate, point_estimate, risk_controlled
from fastexit_bench.io import write_json
from fastexit_bench.reporting.tables import paper_policy

REFERENCE = Path("results/reference")


def pooled(selection: LayerOutputs, reported: LayerOutputs) -> LayerOutputs:
    """The two splits' examples side by side (the same model's outputs)."""
    scores = (
        np.concatenate([selection.exit_scores, reported.exit_scores], axis=1)
        if selection.exit_scores is not None
        else None
    )
    return LayerOutputs(
        np.concatenate([selection.logits, reported.logits], axis=1),
        selection.task,
        scores,
        np.concatenate([selection.labels, reported.labels]),
    )


def artefact_pairs() -> list[tuple[str, str, ExitArtifact, ExitArtifact]]:
    """(experiment, sweep stem, selection artefact, reported artefact) of every early-exit reference
    classification model."""
    pairs = []
    for record_path in sorted(REFERENCE.glob("*/sweeps/*.json")):
        record = json.loads(record_path.read_text())
        stem = record_path.parent.parent / "exits" / record_path.stem
        selection = ExitArtifact.load(stem.with_name(f"{stem.name}.{record['artifact']['split']}.npz"))
        if (
            paper_policy(selection.metadata.recipe) is None
            or record["reported_split"] == record["artifact"]["split"]
            or selection.predictions.task != "classification"
        ):
            continue
        reported = ExitArtifact.load(stem.with_name(f"{stem.name}.{record['reported_split']}.npz"))
        pairs.append((record_path.parent.parent.name, record_path.stem, selection, reported))
    return pairs


def resplit_rates(
    selection: ExitArtifact,
    reported: ExitArtifact,
    deltas: list[float],
    epsilon: float,
    splits: int,
    seed: int,
) -> dict:
    """Violation rates, kept speed-ups and realized drops of both rules over ``splits`` random re-splits."""
    policy = resolve_policy(paper_policy(selection.metadata.recipe))
    outputs = pooled(selection.predictions, reported.predictions)
    layers, examples = outputs.num_layers, len(outputs.labels)
    predictions = outputs.predictions()
    full = predictions[-1] == outputs.labels
    values = [float(v) for v in policy.grid(outputs)]
    exits = np.stack([policy.exit_layers(outputs, v) for v in values])  # [values, examples]; per example
    correct = predictions[exits - 1, np.arange(examples)] == outputs.labels
    size = len(selection.lengths)
    rng = np.random.default_rng(seed)
    results = {}
    for delta in deltas:
        kept = {"point_estimate": [], "risk_controlled": []}
        for _ in range(splits):
            order = rng.permutation(examples)
            chosen, test = order[:size], order[size:]
            candidates = [
                Candidate(
                    v,
                    float(exits[i, chosen].mean()),
                    int((~correct[i, chosen] & full[chosen]).sum()),
                    100 * float(full[chosen].mean() - correct[i, chosen].mean()),
                )
                for i, v in enumerate(values)
            ]
            picks = {
                "point_estimate": point_estimate(candidates, delta),
                "risk_controlled": risk_controlled(candidates, size, delta, epsilon).value,
            }
            for rule, value in picks.items():
                if value is None:  # nothing qualifies: full depth
                    kept[rule].append((0.0, 1.0))
                    continue
                i = values.index(value)
                drop = 100 * float(full[test].mean() - correct[i, test].mean())
                kept[rule].append((drop, layers / float(exits[i, test].mean())))
        results[f"delta_{delta:g}pt"] = {
            rule: {
                "violation_rate": float(np.mean([d > delta + 1e-9 for d, _ in rows])),
                "mean_test_drop_points": float(np.mean([d for d, _ in rows])),
                "mean_layer_speedup": float(np.mean([s for _, s in rows])),
            }
            for rule, rows in kept.items()
        }
    return {
        "policy": policy.name,
        "selection_examples": size,
        "test_examples": examples - size,
        "full_depth_accuracy": float(full.mean()),
        **results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deltas", type=float, nargs="+", default=[1.0, 2.0], help="drop budgets (points)")
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--splits", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for experiment, stem, selection, reported in artefact_pairs():
        rates = resplit_rates(selection, reported, args.deltas, args.epsilon, args.splits, args.seed)
        rows.append({"experiment": experiment, "model": stem, **rates})
        for key in (k for k in rates if k.startswith("delta_")):
            pe, rc = rates[key]["point_estimate"], rates[key]["risk_controlled"]
            print(
                f"{experiment:15} {stem:28} {key:10} violations: point {pe['violation_rate']:.3f} "
                f"risk {rc['violation_rate']:.3f} | speed-up point {pe['mean_layer_speedup']:.2f}x "
                f"risk {rc['mean_layer_speedup']:.2f}x"
            )
    worst = max(r[k]["risk_controlled"]["violation_rate"] for r in rows for k in r if k.startswith("delta_"))
    print(f"largest risk-controlled violation rate {worst:.3f} (goal <= {args.epsilon:g})")
    if args.out:
        write_json(
            args.out,
            {
                "provenance": provenance.collect(config={k: str(v) for k, v in vars(args).items()}),
                "epsilon": args.epsilon,
                "splits": args.splits,
                "goal": f"risk-controlled violation rate <= {args.epsilon:g} on every model",
                "largest_risk_controlled_violation_rate": worst,
                "models": rows,
            },
        )


if __name__ == "__main__":
    main()
