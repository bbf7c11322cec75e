"""Everything `sweep` computes for one model: policies fitted on the selection artefact, every value swept there,
operating points chosen there and measured on the reported artefact, and the degenerate-model check."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastexit_bench import provenance
from fastexit_bench.analysis.artifact import ExitArtifact, check_pair
from fastexit_bench.analysis.degenerate import check_model
from fastexit_bench.analysis.operating_points import OperatingPointSpec, choose, measure
from fastexit_bench.analysis.policies import (
    DEFAULT_POLICIES,
    REFERENCE_POLICIES,
    ExitPolicy,
    policy_errors,
    resolve_policy,
)
from fastexit_bench.analysis.sweep import SweepRecord, SweepResult, scores, sweep
from fastexit_bench.analysis.uncertainty import bootstrap_weights
from fastexit_bench.errors import PolicyError
from fastexit_bench.io import sha256_file


def fitted_policies(
    dev: ExitArtifact, requested: Sequence[str] | None, log: Callable[[str], None]
) -> dict[str, ExitPolicy]:
    """The policies to sweep, fitted on ``dev`` (the reported split is only measured), references added. A
    default policy that does not apply to the artefact is skipped (and logged); one asked for by name is an
    error."""
    names = list(requested or DEFAULT_POLICIES)
    policies = {}
    for name in [*names, *(r for r in REFERENCE_POLICIES if r not in names)]:
        policy = resolve_policy(name)
        try:
            with policy_errors(policy):
                policy.fit(dev.predictions)
                policy.sweep_exit_layers(dev.predictions, policy.checked_grid(dev.predictions)[:1])
        except PolicyError as exc:
            if requested:
                raise
            log(f"skipping {policy.name}: {exc}")
            continue
        policies[policy.name] = policy
    return policies


def sweep_artifact(
    dev_path: Path,
    test_path: Path | None,
    requested: Sequence[str] | None,
    grids: Mapping[str, Sequence[float]],
    spec: OperatingPointSpec,
    config: dict[str, Any],
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Sweep the artefact at ``dev_path`` (``requested`` policies, None: the defaults that apply; ``grids``:
    values instead of a policy's default grid), choose ``spec``'s operating points on it and measure them on
    ``test_path`` (None: on dev); ``config`` is recorded as the run's provenance."""
    dev = ExitArtifact.load(dev_path)
    policies = fitted_policies(dev, requested, log)
    unknown = (set(grids) | set(spec.values)) - set(policies)
    if unknown:
        raise PolicyError(
            f"--grid/--values name {sorted(unknown)}, which are not among the swept policies {list(policies)}"
        )
    table = sweep(dev, list(policies.values()), dict(grids))
    metric = dev.metadata.headline_metric
    reported = ExitArtifact.load(test_path) if test_path is not None else dev
    if test_path is not None:
        check_pair(dev, reported, dev_path, test_path)
    check = check_model(dev.predictions, metric, bootstrap_weights(len(dev.predictions.labels)))
    if check.degenerate:
        log(f"warning: {dev_path}: {check.describe()}")
    points = choose(table, metric, spec, dev.predictions, policies)
    selection = measure(reported, points, policies).assign(degenerate=check.degenerate)
    inputs = {str(p): sha256_file(p) for p in (dev_path, test_path) if p is not None}
    record = SweepRecord(
        artifact={k: v for k, v in dev.metadata.to_dict().items() if k != "provenance"},
        operating_points={
            "values": dict(spec.values),
            "max_drop": list(spec.max_drop),
            "min_speedup": list(spec.min_speedup),
            "risk": list(spec.risk),
            "risk_epsilon": spec.risk_epsilon,
        },
        reported_split=reported.metadata.split,
        flops_source=str(table.flops_source.iloc[0]),
        rows=len(table),
        model_check=check,
        provenance=provenance.collect(config=config, inputs=inputs),
    )
    return SweepResult(table, scores(table, metric), selection, record)
