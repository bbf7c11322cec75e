"""The interchange format: an exported-then-imported artefact sweeps exactly as the original (Parquet and
.npz + JSON), and a plain [layers, examples, outputs] array imports into an artefact sweep and the leaderboard
read like a native one."""

import json

import numpy as np
import pandas as pd
import pytest

from fastexit_bench.analysis.artifact import ExitArtifact
from fastexit_bench.analysis.interchange import PartCosts, from_arrays, read_interchange
from fastexit_bench.analysis.policies import resolve_policy
from fastexit_bench.analysis.sweep import sweep
from fastexit_bench.cli import main
from fastexit_bench.errors import FastExitError, RecordError
from tests.test_leaderboard import confident_artifact

POLICIES = ["entropy", "max_prob", "patience", "static"]


def swept(artifact: ExitArtifact) -> pd.DataFrame:
    return sweep(artifact, [resolve_policy(name) for name in POLICIES])


@pytest.mark.parametrize("suffix", [".parquet", ".npz"])
def test_export_then_import_sweeps_identically(tmp_path, suffix):
    original = confident_artifact(0, "validation")
    original.texts = np.asarray([f"example {i}" for i in range(len(original.lengths))])
    original.save(tmp_path / "native.npz")
    native = ExitArtifact.load(tmp_path / "native.npz")
    assert (
        main(["artefact", "export", str(tmp_path / "native.npz"), "--out", str(tmp_path / f"x{suffix}")]) == 0
    )
    back = tmp_path / "back.npz"
    assert main(["artefact", "import", str(tmp_path / f"x{suffix}"), "--out", str(back)]) == 0
    imported = ExitArtifact.load(back)
    pd.testing.assert_frame_equal(swept(imported), swept(native))
    assert imported.metadata == native.metadata
    np.testing.assert_array_equal(imported.texts, native.texts)


def test_a_plain_array_imports_with_its_flop_convention(tmp_path, capsys):
    native = confident_artifact(1, "validation")
    np.save(tmp_path / "logits.npy", native.predictions.logits)
    np.save(tmp_path / "labels.npy", native.predictions.labels)
    out = tmp_path / "exits" / "sst2.mine.seed1.validation.npz"
    common = ["--labels", str(tmp_path / "labels.npy"), "--dataset", "sst2", "--split", "validation"]
    costs = ["--macs", "layer=2000", "--macs", "head=40", "--flop-convention", "flops"]
    code = main(
        ["artefact", "import", str(tmp_path / "logits.npy"), *common, *costs, "--recipe", "mine"]
        + ["--seed", "1", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    imported = ExitArtifact.load(out)
    assert imported.metadata.flops["coefficients"]["layer"] == [1000.0]  # FLOPs halved into MACs
    table = swept(imported)
    static = table[table.policy == "static"].set_index("value")
    assert static.loc[2.0, "relative_flops"] == pytest.approx((2 * 1000 + 20) / (4 * 1000 + 20))
    np.testing.assert_array_equal(
        table[table.policy == "entropy"].accuracy.to_numpy(),
        swept(native)[lambda t: t.policy == "entropy"].accuracy,
    )
    assert main(["sweep", str(out), "--out", str(tmp_path / "s.csv")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["flops_source"] == "imported (flops)"


def test_bad_imports_say_what_is_missing(tmp_path, capsys):
    np.save(tmp_path / "logits.npy", np.zeros((3, 4, 2), np.float32))
    code = main(["artefact", "import", str(tmp_path / "logits.npy"), "--out", str(tmp_path / "a.npz")])
    assert code == 2 and "--labels, --dataset, --split" in capsys.readouterr().err
    with pytest.raises(FastExitError, match="4 labels for 3 examples"):
        from_arrays(
            np.zeros((2, 3, 2)),
            np.zeros(4),
            dataset="d",
            split="s",
            recipe="r",
            backbone="b",
            costs=PartCosts(0, 1, 0),
        )
    (tmp_path / "foreign.json").write_text(json.dumps({"schema": "other"}))
    np.savez(tmp_path / "foreign.npz", logits=np.zeros((1, 1, 1)))
    with pytest.raises(RecordError, match="not a fastexit-exits file"):
        read_interchange(tmp_path / "foreign.npz")
    assert not (tmp_path / "a.npz").exists()


def test_imported_outputs_run_through_sweep_report_and_leaderboard(tmp_path, capsys):
    exits = tmp_path / "exits"
    for split in ("selection", "validation"):
        native = confident_artifact(0, split)
        np.save(tmp_path / f"{split}.npy", native.predictions.logits)
        np.save(tmp_path / f"{split}.labels.npy", native.predictions.labels)
        args = ["--labels", str(tmp_path / f"{split}.labels.npy"), "--dataset", "sst2", "--split", split]
        args += ["--recipe", "mine", "--macs", "layer=1000", "--macs", "head=10"]
        out = exits / f"sst2.mine.seed0.{split}.npz"
        assert main(["artefact", "import", str(tmp_path / f"{split}.npy"), *args, "--out", str(out)]) == 0
    sweep_out = tmp_path / "sweeps" / "sst2.mine.seed0.csv"
    dev, test = (str(exits / f"sst2.mine.seed0.{s}.npz") for s in ("selection", "validation"))
    assert main(["sweep", dev, "--test", test, "--out", str(sweep_out)]) == 0
    report = ["report", "--name", "imp", "--sweeps", str(sweep_out), "--artifacts", dev, test]
    report += ["--reference", "mine", "--tables", str(tmp_path / "t"), "--plots", str(tmp_path / "p")]
    assert main(report) == 0, capsys.readouterr().err
    assert (tmp_path / "t" / "imp_paper.md").is_file()
    assert main(["leaderboard", str(exits), "--out", str(tmp_path / "lb.md")]) == 0
    assert "entropy" in pd.read_csv(tmp_path / "lb.csv").policy.tolist()
