"""The leaderboard over folders of artefacts (which models are early-exit ones, by their recipe) and its
files: the ranked table (Markdown with its definitions, LaTeX, CSV), each model's scores,
the wins/ties/losses matrix, one figure and the record; named after the ``.md`` path given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.leaderboard import (
    MAX_DROPS,
    SPEEDUP_DROP,
    Leaderboard,
    ModelArtefacts,
    leaderboard,
)
from fastexit_bench.data.spec import DATASETS
from fastexit_bench.errors import FastExitError
from fastexit_bench.io import file_set
from fastexit_bench.reporting import page
from fastexit_bench.reporting.plots import FIGURE_SUFFIXES, leaderboard_plot
from fastexit_bench.reporting.tables import TABLE_SUFFIXES, paper_policy, write_table

NOTES = (
    (
        "Split: operating points and calibrations are chosen on each model's selection split; every number is "
        "measured on its reported split (test, or the official dev split where the test labels are hidden)."
    ),
    (
        "gain vs static: mean metric gain (points) of the policy's best value within a FLOPs budget over static "
        "truncation's, over budgets from layer 1 to full depth (0 for static; `docs/methods.md`)."
    ),
    "ELUE-style score: the mean, over the values chosen on the selection split within "
    + ", ".join(f"{d:g}" for d in MAX_DROPS)
    + " points of full depth, of the reported metric minus static truncation's at the same FLOPs (points).",
    (
        "[95% CI]: two-level bootstrap, 1,000 resamples of the reported examples and, within each (experiment, "
        "dataset, recipe), of its seeds. Speed-up: FLOPs (fvcore MACs, true lengths, heads read on the way), "
        f"geometric mean over models, at the value chosen within {SPEEDUP_DROP:g} point on the selection split; "
        "Δ: the reported metric's mean change there against full depth (points)."
    ),
    (
        "wins/ties/losses: over every (model, other policy) pair, the paired 95% interval of the gain difference "
        "above 0, containing it, below it. Only models whose every exit was trained are ranked, degenerate "
        "ones (full depth within noise of the majority class) are left out, and so is the oracle (it reads "
        "labels). A policy that applies to fewer models than the others (rank —) is not ranked: its means "
        "are over those models only."
    ),
)


def _split_roles(dataset: str, splits: Sequence[str]) -> tuple[str, str] | None:
    """(selection, reported) split names: the registered dataset's, else ``selection`` or ``validation``
    for selection and the other one reported (artefacts imported from elsewhere)."""
    if dataset in DATASETS.names():
        spec = DATASETS.get(dataset)
        return spec.selection_split, spec.reported_split
    chosen = next((s for s in ("selection", "validation") if s in splits), None)
    others = [s for s in splits if s != chosen]
    return (chosen, others[0]) if chosen and len(others) == 1 else None


def _artefact_files(places: Sequence[Path]) -> list[Path]:
    """The ``*.npz`` files given, and those under the folders given (recursively)."""
    files = []
    for place in map(Path, places):
        if place.is_dir():
            files += sorted(place.rglob("*.npz"))
        elif place.suffix == ".npz" and place.is_file():
            files.append(place)
        else:
            raise FastExitError(f"{place} is neither an evaluation artefact (.npz) nor a folder of them")
    return files


def find_models(places: Sequence[Path], log: Callable[[str], None] = print) -> list[ModelArtefacts]:
    """Every early-exit model with both artefacts among ``places`` (artefacts, or folders searched for them);
    a model's seeds are pooled within the folder its artefacts are in."""
    found: dict[tuple, dict[str, Path]] = {}
    seeds: dict[tuple, int] = {}
    for path in _artefact_files(places):
        meta = ExitArtifact.load(path).metadata
        if meta.exit_policy is None and paper_policy(meta.recipe) is None:
            continue  # trained to exit at its last layer only
        key = (str(path.parent), meta.dataset, meta.recipe, meta.backbone_name, meta.seed, meta.model_sha256)
        found.setdefault(key, {})[meta.split] = path
        seeds[key] = meta.seed
    models = []
    for key, splits in found.items():
        roles = _split_roles(key[1], list(splits))
        if roles is None or not set(roles) <= set(splits):
            log(f"skipping {key[1]}/{key[2]} seed {key[4]} in {key[0]}: no selection and reported pair")
            continue
        group = ":".join(str(part) for part in key[:4])
        models.append(ModelArtefacts(group, seeds[key], splits[roles[0]], splits[roles[1]]))
    if not models:
        raise FastExitError(
            f"no early-exit model with a selection and a reported artefact in {[str(p) for p in places]}"
        )
    return models


def build_leaderboard(
    places: Sequence[Path], requested: Sequence[str] | None, config: dict, log: Callable[[str], None] = print
) -> Leaderboard:
    """The leaderboard of ``requested`` policies (None: the defaults) over the early-exit models among
    ``places`` (artefacts, or folders of them)."""
    return leaderboard(find_models(places, log), requested, config, log)


def _ci(value: float, low: float, high: float) -> str:
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def display_table(ranking: pd.DataFrame) -> pd.DataFrame:
    """The ranking as a reader sees it: intervals in brackets, speed-ups with their drop."""
    return pd.DataFrame(
        {
            "rank": [str(int(r)) if pd.notna(r) else "—" for r in ranking["rank"]],
            "policy": ranking.policy,
            "models": ranking.models,
            "gain vs static (pt) [95% CI]": [
                _ci(r.gain_vs_static, r.gain_low, r.gain_high) for r in ranking.itertuples()
            ],
            "ELUE-style score (pt) [95% CI]": [
                _ci(r.elue_score, r.elue_low, r.elue_high) for r in ranking.itertuples()
            ],
            f"speed-up at dev <={SPEEDUP_DROP:g} pt (FLOPs)": [f"{v:.2f}x" for v in ranking.speedup_at_1pt],
            "Δ vs full depth there (pt)": [f"{v:+.2f}" for v in -ranking.drop_at_1pt],
            "wins/ties/losses": ranking["wins/ties/losses"],
        }
    )


def output_paths(markdown: Path) -> list[Path]:
    """Every file :func:`write_leaderboard` writes for ``markdown`` (``NAME.md``)."""
    stem = Path(markdown).with_suffix("")
    return [
        *(stem.with_suffix(s) for s in TABLE_SUFFIXES),
        stem.with_name(f"{stem.name}_models.csv"),
        *(stem.with_suffix(s) for s in FIGURE_SUFFIXES),
        stem.with_suffix(".html"),
        stem.with_suffix(".json"),
    ]


def write_leaderboard(board: Leaderboard, markdown: Path) -> list[Path]:
    """Write every file of ``board`` next to ``markdown`` (``NAME.md``): NAME.{md,tex,csv} (the ranking),
    NAME_models.csv, NAME.{png,pdf}, NAME.html (all on one page) and NAME.json; returns their paths."""
    stem = Path(markdown).with_suffix("")
    head_to_head = board.head_to_head.to_markdown(index=False)
    left_out = [f"Left out, degenerate: {reason}" for reason in board.record.left_out]
    notes = [
        *left_out,
        *NOTES,
        (
            "Wins/ties/losses of each policy (row) against each other (column), over the models both apply "
            f"to:\n\n{head_to_head}"
        ),
    ]
    with file_set(stem.with_suffix(".json")) as files:
        staged = files.folder(stem.parent) / stem.name
        write_table(display_table(board.ranking), staged, "Exit-policy leaderboard (reported split)", notes)
        board.per_model.to_csv(staged.with_name(f"{stem.name}_models.csv"), index=False)
        leaderboard_plot(board.ranking, board.per_model, staged)
        plot = page.figure_html(
            staged.with_suffix(".png"), "gain over static truncation", page.caption_html("leaderboard")
        )
        page.markdown_page(staged.with_suffix(".html"), staged.with_suffix(".md").read_text(), [plot])
        return files.publish(board.record.to_dict())
