"""Every CLI subcommand against a missing input, a corrupt input, an output with something in its way and
an output that cannot be written: one line naming the problem, exit status 2, no traceback, and nothing on
disk changed (no file deleted or rewritten, no half-written result)."""

import hashlib
import shutil
from pathlib import Path

import pytest

from fastexit_bench.cli import main

TINY = ["--max-length", "32", "--device", "cpu", "--precision", "fp32"]
TRAIN = [
    "train",
    "--backbone",
    "tiny-bert",
    "--recipe",
    "deebert",
    "--max-train",
    "64",
    "--max-eval",
    "16",
    "--epochs",
    "1",
    "--max-steps",
    "3",
    "--batch-size",
    "8",
    *TINY,
]


@pytest.fixture(scope="module")
def made(tmp_path_factory, resources):
    """A trained tiny model, its dev and test artefacts and sweep, and corrupt copies of each kind of input."""
    root = tmp_path_factory.mktemp("faults")
    res = ["--resources", str(resources)]
    assert main([*TRAIN, "--dataset", "bbc_news", *res, "--out", str(root / "model")]) == 0
    for split in ("validation", "test"):
        assert (
            main(
                [
                    "evaluate",
                    str(root / "model"),
                    "--split",
                    split,
                    "--max-eval",
                    "16",
                    *res,
                    "--device",
                    "cpu",
                    "--out",
                    str(root / f"{split}.npz"),
                ]
            )
            == 0
        )
    assert (
        main(
            [
                "sweep",
                str(root / "validation.npz"),
                "--test",
                str(root / "test.npz"),
                "--out",
                str(root / "sweep.csv"),
            ]
        )
        == 0
    )
    (root / "bad_mirror" / "sst2").mkdir(parents=True)
    for split in ("train", "validation"):
        (root / "bad_mirror" / "sst2" / f"{split}.tsv").write_bytes(bytes(range(256)) * 4)
    (root / "bad_backbone").mkdir()
    (root / "bad_backbone" / "config.json").write_text("{oops")
    shutil.copytree(root / "model", root / "bad_model")
    (root / "bad_model" / "model.safetensors").write_bytes(b"\x00" * 100)
    (root / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    for suffix in (".csv", ".scores.csv", ".selection.csv", ".json"):
        (root / f"bad_sweep{suffix}").write_text("no,columns\n1,2\n" if suffix != ".json" else "{")
    (root / "bad.yaml").write_text("experiments: {deebert_table1: [")
    (root / "in_the_way").mkdir()
    (root / "in_the_way" / "notes.txt").write_text("keep me")
    for name in ("out.json", "out.npz", "out.csv", "tables/r.md"):
        (root / name).mkdir(parents=True)
        (root / name / "notes.txt").write_text("keep me")
    (root / "a_file").write_text("not a folder")
    return root


def cases(root: Path, resources: Path) -> dict[str, list[str]]:
    res = ["--resources", str(resources)]
    model, dev, sweep = root / "model", root / "validation.npz", root / "sweep.csv"
    blocked = root / "a_file" / "sub"  # under a file: nothing can be written there, even by root
    report = ["report", "--name", "r", "--plots", str(root / "plots")]
    evaluate = ["evaluate", *res, "--device", "cpu"]
    latency = ["latency", *res, "--device", "cpu", "--selection", str(root / "sweep.selection.csv")]
    serve = ["serve-bench", *res, "--device", "cpu", "--policy", "entropy", "--value", "0.5"]
    return {
        "data show/missing": ["data", "show", "sst2", "--mirror", str(root / "no_mirror")],
        "data show/corrupt": ["data", "show", "sst2", "--mirror", str(root / "bad_mirror")],
        "data prepare/corrupt": [
            "data",
            "prepare",
            "sst2",
            "--backbone",
            "tiny-bert",
            *res,
            "--mirror",
            str(root / "bad_mirror"),
            "--out",
            str(root / "p.json"),
        ],
        "data prepare/in the way": [
            "data",
            "prepare",
            "bbc_news",
            "--backbone",
            "tiny-bert",
            *res,
            "--out",
            str(root / "out.json"),
        ],
        "data prepare/unwritable": [
            "data",
            "prepare",
            "bbc_news",
            "--backbone",
            "tiny-bert",
            *res,
            "--out",
            str(blocked / "p.json"),
        ],
        "backbone show/missing": ["backbone", "show", str(root / "no_backbone")],
        "backbone show/corrupt": ["backbone", "show", str(root / "bad_backbone")],
        "backbone show/in the way": ["backbone", "show", "tiny-bert", *res, "--out", str(root / "out.json")],
        "backbone show/unwritable": ["backbone", "show", "tiny-bert", *res, "--out", str(blocked / "b.json")],
        "flops/missing": ["flops", "--backbone", str(root / "no_backbone")],
        "flops/corrupt": ["flops", "--backbone", str(root / "bad_backbone")],
        "train/missing": [
            *TRAIN,
            "--dataset",
            "sst2",
            "--mirror",
            str(root / "no_mirror"),
            *res,
            "--out",
            str(root / "m"),
        ],
        "train/corrupt": [
            *TRAIN,
            "--dataset",
            "sst2",
            "--mirror",
            str(root / "bad_mirror"),
            *res,
            "--out",
            str(root / "m"),
        ],
        "train/corrupt backbone": [
            *TRAIN,
            "--dataset",
            "bbc_news",
            "--backbone",
            str(root / "bad_backbone"),
            "--out",
            str(root / "m"),
        ],
        "train/in the way": [*TRAIN, "--dataset", "bbc_news", *res, "--out", str(model)],
        "train/a file in the way": [*TRAIN, "--dataset", "bbc_news", *res, "--out", str(root / "a_file")],
        "train/unwritable": [*TRAIN, "--dataset", "bbc_news", *res, "--out", str(blocked)],
        "evaluate/missing": [*evaluate, str(root / "no_model"), "--out", str(root / "e.npz")],
        "evaluate/corrupt": [*evaluate, str(root / "bad_model"), "--out", str(root / "e.npz")],
        "evaluate/in the way": [*evaluate, str(model), "--out", str(root / "out.npz")],
        "evaluate/unwritable": [*evaluate, str(model), "--out", str(blocked / "e.npz")],
        "sweep/missing": ["sweep", str(root / "no.npz"), "--out", str(root / "s.csv")],
        "sweep/corrupt": ["sweep", str(root / "bad.npz"), "--out", str(root / "s.csv")],
        "sweep/corrupt test": [
            "sweep",
            str(dev),
            "--test",
            str(root / "bad.npz"),
            "--out",
            str(root / "s.csv"),
        ],
        "sweep/in the way": ["sweep", str(dev), "--out", str(root / "out.csv")],
        "sweep/unwritable": ["sweep", str(dev), "--out", str(blocked / "s.csv")],
        "latency/missing": [*latency, str(root / "no_model"), "--out", str(root / "l.json")],
        "latency/corrupt": [
            *latency,
            str(model),
            "--selection",
            str(root / "bad_sweep.csv"),
            "--out",
            str(root / "l.json"),
        ],
        "latency/in the way": [*latency, str(model), "--out", str(root / "out.json")],
        "latency/unwritable": [*latency, str(model), "--out", str(blocked / "l.json")],
        "serve-bench/missing": [*serve, str(root / "no_model"), "--out", str(root / "v.json")],
        "serve-bench/corrupt": [*serve, str(root / "bad_model"), "--out", str(root / "v.json")],
        "serve-bench/in the way": [*serve, str(model), "--out", str(root / "out.json")],
        "serve-bench/unwritable": [*serve, str(model), "--out", str(blocked / "v.json")],
        "report/missing": [
            *report,
            "--sweeps",
            str(sweep),
            "--artifacts",
            str(root / "no.npz"),
            "--tables",
            str(root / "t"),
        ],
        "report/corrupt": [
            *report,
            "--sweeps",
            str(root / "bad_sweep.csv"),
            "--artifacts",
            str(dev),
            "--tables",
            str(root / "t"),
        ],
        "report/in the way": [
            *report,
            "--sweeps",
            str(sweep),
            "--artifacts",
            str(dev),
            "--tables",
            str(root / "tables"),
        ],
        "report/unwritable": [
            *report,
            "--sweeps",
            str(sweep),
            "--artifacts",
            str(dev),
            "--tables",
            str(blocked),
        ],
        "claims/missing": ["claims", "--points", str(root / "no_points.csv"), "--out", str(root / "c")],
        "claims/corrupt": ["claims", "--points", str(root / "bad_sweep.csv"), "--out", str(root / "c")],
        "claims/in the way": ["claims", "--points", str(root / "bad_sweep.csv"), "--out", str(root / "out")],
        "claims/unwritable": ["claims", "--points", str(root / "bad_sweep.csv"), "--out", str(blocked / "c")],
        "plan/missing": ["plan", "deebert_table1", "--config", str(root / "no.yaml")],
        "plan/corrupt": ["plan", "deebert_table1", "--config", str(root / "bad.yaml")],
    }


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


COMMANDS = (
    "data show",
    "data prepare",
    "backbone show",
    "flops",
    "train",
    "evaluate",
    "sweep",
    "latency",
    "serve-bench",
    "report",
    "claims",
    "plan",
)


def test_every_writing_command_is_covered(made, resources):
    covered = {name.split("/")[0] for name in cases(made, resources)}
    assert covered == set(COMMANDS)


@pytest.mark.parametrize("case", list(cases(Path("x"), Path("y"))))
def test_bad_input_or_output_exits_2_with_one_line_and_changes_nothing(made, resources, capsys, case):
    argv = cases(made, resources)[case]
    before = snapshot(made)
    assert main(argv) == 2, case
    err = capsys.readouterr().err.strip()  # progress bars of what loaded before the problem may come first
    assert err.splitlines()[-1].startswith("fastexit-bench: error: ") and "Traceback" not in err, err
    assert snapshot(made) == before, case
