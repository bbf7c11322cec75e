import pandas as pd
import pytest

from fastexit_bench.reporting.plots import _mean_over_seeds, exit_shares, metric_vs_flops


def _sweep() -> pd.DataFrame:
    """Two seeds of a 2-layer model: static at both depths and a two-value entropy grid."""
    rows = []
    for seed, accuracy in ((0, 0.80), (1, 0.90)):
        for policy, value, share_1, relative_flops in (("static", 1, 1.0, 0.5), ("static", 2, 0.0, 1.0),
                                                       ("entropy", 0.0, 0.0, 1.0), ("entropy", 0.5, 0.5, 0.75)):
            rows.append({"dataset": "d", "recipe": "r", "seed": seed, "policy": policy, "value": value,
                         "headline_metric": "accuracy", "accuracy": accuracy - 0.1 * (1 - relative_flops),
                         "exit_share_1": share_1, "exit_share_2": 1 - share_1,
                         "relative_flops": relative_flops, "speedup": 1 / relative_flops})
    return pd.DataFrame(rows)


def test_seeds_are_averaged_per_policy_value():
    mean = _mean_over_seeds(_sweep())
    assert len(mean) == 4 and "seed" not in mean
    full_depth = mean[(mean.policy == "static") & (mean.value == 2)]
    assert full_depth.accuracy.item() == pytest.approx(0.85)


def test_plots_are_written_for_several_seeds(tmp_path):
    sweep = _sweep()
    written = metric_vs_flops(sweep, tmp_path / "curves") + exit_shares(sweep, tmp_path / "shares")
    assert sorted(p.name for p in written) == ["curves.pdf", "curves.png", "shares.pdf", "shares.png"]
    assert all(p.stat().st_size > 0 for p in written)
