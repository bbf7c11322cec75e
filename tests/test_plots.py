import pandas as pd
import pytest

from fastexit_bench.reporting.page import CAPTIONS
from fastexit_bench.reporting.plots import (
    REPORT_PLOTS,
    _early_exit_panels,
    _mean_over_seeds,
    _pareto,
    exit_shares,
    layer_metric,
    method_fronts,
    metric_vs_flops,
)


def _sweep(recipe: str = "deebert") -> pd.DataFrame:
    """Two seeds of a 2-layer model: static at both depths and a two-value entropy grid."""
    rows = []
    for seed, accuracy in ((0, 0.80), (1, 0.90)):
        for policy, value, share_1, relative_flops in (
            ("static", 1, 1.0, 0.5),
            ("static", 2, 0.0, 1.0),
            ("entropy", 0.0, 0.0, 1.0),
            ("entropy", 0.5, 0.5, 0.75),
        ):
            rows.append(
                {
                    "dataset": "d",
                    "recipe": recipe,
                    "seed": seed,
                    "policy": policy,
                    "value": value,
                    "headline_metric": "accuracy",
                    "accuracy": accuracy - 0.1 * (1 - relative_flops),
                    "exit_share_1": share_1,
                    "exit_share_2": 1 - share_1,
                    "relative_flops": relative_flops,
                    "speedup": 1 / relative_flops,
                    "flops_per_example": 1e9 * relative_flops,
                    "split": "validation",
                }
            )
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


def test_policy_plots_leave_out_models_whose_early_heads_were_never_trained(tmp_path):
    sweep = pd.concat([_sweep("baseline"), _sweep("deebert"), _sweep("truncated-1")])
    assert [recipe for (_, recipe), _ in _early_exit_panels(sweep)] == ["deebert"]
    assert _early_exit_panels(_sweep("baseline")) == []
    assert len(metric_vs_flops(_sweep("baseline"), tmp_path / "none")) == 2  # a panel that says so


def test_the_layer_plot_draws_intervals(tmp_path):
    layers = pd.DataFrame(
        [
            {
                "dataset": "d",
                "split": "validation",
                "recipe": "deebert",
                "seed": 0,
                "metric": "accuracy",
                "layer_1": 0.7,
                "layer_1_low": 0.6,
                "layer_1_high": 0.8,
                "layer_2": 0.9,
                "layer_2_low": 0.85,
                "layer_2_high": 0.95,
            }
        ]
    )
    assert [p.suffix for p in layer_metric(layers, tmp_path / "layers")] == [".png", ".pdf"]


def test_method_fronts_put_every_method_of_a_dataset_on_one_panel(tmp_path):
    """Early-exit fronts, fixed-depth models joined per family, and the paper's claim placed on our baseline."""
    sweep = pd.concat([_sweep("deebert"), _sweep("baseline"), _sweep("truncated-1"), _sweep("fastbert")])
    sweep = sweep.assign(dataset="ag_news")  # has published FastBERT numbers
    written = method_fronts(sweep, tmp_path / "fronts")
    assert [p.name for p in written] == ["fronts.png", "fronts.pdf"] and all(
        p.stat().st_size for p in written
    )


def test_pareto_keeps_rows_no_cheaper_row_beats():
    rows = pd.DataFrame({"flops_per_example": [1.0, 2.0, 3.0, 4.0], "accuracy": [0.5, 0.4, 0.7, 0.7]})
    assert _pareto(rows, "accuracy").flops_per_example.tolist() == [1.0, 3.0]


def test_every_report_figure_has_its_caption():
    """The results page and `snakemake --report` caption each registered figure from CAPTIONS/<name>.rst."""
    captions = CAPTIONS
    assert len(REPORT_PLOTS.names()) == 5
    assert all((captions / f"{name}.rst").is_file() for name in REPORT_PLOTS)
