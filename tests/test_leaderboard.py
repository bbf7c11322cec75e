"""The policy leaderboard: a deliberately bad policy ranks below static and entropy with an interval below 0,
a user's policy by import path is ranked, and only early-exit models with both artefacts are read."""

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import ArtifactMetadata, ExitArtifact, LayerOutputs
from fastexit_bench.cli import main
from fastexit_bench.locations import ResolvedBackbone
from fastexit_bench.reporting.leaderboard import build_leaderboard
from tests.test_sweep import ARCH

RIGHT = (0.55, 0.85, 0.9, 0.92)
"""Each exit's chance of being right: a large gain at layer 2, little after (as trained exits behave)."""

RANDOM_EXIT = '''
    import numpy as np
    from fastexit_bench.analysis.policies import ExitPolicy

    class RandomExit(ExitPolicy):
        """Leave at each layer with probability ``value``, whatever the heads say."""
        name = "random_exit"
        parameter = "probability"
        def grid(self, outputs):
            return [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]
        def exit_mask(self, outputs, value):
            return np.random.default_rng(0).random(outputs.logits.shape[:2]) < value
'''


def confident_artifact(
    seed: int, split: str, recipe: str = "deebert", examples: int = 600, right: tuple = RIGHT
) -> ExitArtifact:
    """Exits whose confidence says whether they are right (right: large logit margins, wrong: small)."""
    rng = np.random.default_rng(10 * seed + (split == "validation"))
    labels = rng.integers(0, 2, examples)
    logits = np.zeros((len(right), examples, 2), dtype=np.float32)
    for k, chance in enumerate(right):
        right = rng.random(examples) < chance
        predicted = np.where(right, labels, 1 - labels)
        logits[k, np.arange(examples), predicted] = np.where(
            right, rng.uniform(1.5, 4.0, examples), rng.uniform(0.0, 1.5, examples)
        )
    meta = ArtifactMetadata(
        dataset="sst2",
        split=split,
        task="classification",
        metrics=["accuracy"],
        recipe=recipe,
        backbone=ResolvedBackbone("tiny", "tiny", "test"),
        seed=seed,
        architecture=ARCH,
        exit_policy="entropy" if recipe == "deebert" else None,
    )
    outputs = LayerOutputs(logits, "classification", labels=labels)
    return ExitArtifact(outputs, rng.integers(5, 60, examples), meta)


@pytest.fixture
def folder(tmp_path):
    exits = tmp_path / "exits"
    exits.mkdir()
    for seed in (0, 1, 2):
        for split in ("selection", "validation"):  # sst2 selects on a carved split, reports on dev
            confident_artifact(seed, split).save(exits / f"sst2.deebert.seed{seed}.{split}.npz")
    for split in ("selection", "validation"):  # a baseline's heads before the last are untrained: not ranked
        confident_artifact(0, split, recipe="baseline").save(exits / f"sst2.baseline.seed0.{split}.npz")
    confident_artifact(3, "selection").save(exits / "sst2.deebert.seed3.selection.npz")  # no reported pair
    for split in ("selection", "validation"):  # a model at chance: degenerate, left out
        chance = confident_artifact(4, split, right=(0.5, 0.5, 0.5, 0.5))
        chance.metadata.model_sha256 = "at-chance"
        chance.save(exits / f"sst2.deebert.seed4.{split}.npz")
    return tmp_path


def test_a_random_policy_ranks_below_static_and_entropy(folder, tmp_path, monkeypatch):
    (tmp_path / "random_policies.py").write_text(textwrap.dedent(RANDOM_EXIT))
    monkeypatch.syspath_prepend(str(tmp_path))
    board = build_leaderboard(
        [folder / "exits"], ["entropy", "random_policies:RandomExit"], {}, log=lambda _: None
    )
    ranking = board.ranking.set_index("policy")
    assert list(ranking.index) == ["entropy", "static", "random_exit"]
    assert ranking.loc["random_exit", "gain_high"] < 0  # below static, and the interval says so
    assert ranking.loc["entropy", "gain_low"] > 0
    assert ranking.loc["static", "gain_vs_static"] == 0 and ranking.loc["static", "gain_high"] == 0
    assert ranking.loc["random_exit", "elue_score"] < ranking.loc["entropy", "elue_score"]
    assert ranking.models.tolist() == [3, 3, 3]
    versus = board.head_to_head.set_index("policy")
    assert versus.loc["random_exit", "entropy"] == "0/0/3" and versus.loc["entropy", "random_exit"] == "3/0/0"


def test_the_command_ranks_a_user_policy_and_writes_every_file(folder, tmp_path, monkeypatch, capsys):
    (tmp_path / "random_policies.py").write_text(textwrap.dedent(RANDOM_EXIT))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "board" / "leaderboard.md"
    policies = "entropy,max_prob,random_policies:RandomExit"
    assert main(["leaderboard", str(folder / "exits"), "--policies", policies, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipping sst2/deebert seed 3" in printed  # a selection artefact without its reported one
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table.policy.tolist()[-1] == "random_exit" and table["rank"].tolist() == [1, 2, 3, 4]
    models = pd.read_csv(out.with_name("leaderboard_models.csv"))
    assert sorted(models.seed.unique()) == [0, 1, 2]  # the baseline (untrained heads) is not ranked
    assert set(models.group.str.split(":").str[2]) == {"deebert"}
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["models"]) == 3 and "seed4" in record["left_out"][0]  # the model at chance
    assert [row["policy"] for row in record["ranking"]] == table.policy.tolist()
    for suffix in (".tex", ".png", ".pdf"):
        assert out.with_suffix(suffix).is_file()
    assert "reported split" in out.read_text() and "random_exit" in out.read_text()


def test_only_degenerate_models_give_an_empty_board_that_says_why(tmp_path, capsys):
    for split in ("selection", "validation"):
        confident_artifact(4, split, right=(0.5, 0.5, 0.5, 0.5)).save(
            tmp_path / f"sst2.deebert.seed4.{split}.npz"
        )
    out = tmp_path / "leaderboard.md"
    assert main(["leaderboard", str(tmp_path), "--out", str(out)]) == 0, capsys.readouterr().err
    text = out.read_text()
    assert "Left out, degenerate" in text and "majority class" in text
    assert pd.read_csv(out.with_suffix(".csv")).empty and out.with_suffix(".png").is_file()
