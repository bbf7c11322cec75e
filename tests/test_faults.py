"""Every CLI subcommand against a missing input, a corrupt input, an output with something in its way and
an output that cannot be written: one line naming the problem, exit status 2, no traceback, and nothing on
disk changed (no file deleted or rewritten, no half-written result)."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import numpy as np
import pandas as pd
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
    craft_inputs(root, resources)
    return root


BROKEN_POLICIES = {
    "Raises": "raise RuntimeError('no GPU here')",
    "Builtin": "class Builtin(Good):\n    name = 'entropy'",
    "NanGrid": "class NanGrid(Good):\n    def grid(self, outputs):\n        return [0.5, float('nan')]",
    "Floats": "class Floats(Good):\n    def exit_mask(self, outputs, value):\n        return outputs.logits.max(-1)",
    "Reads": "class Reads(Good):\n    reads = 'everything'",
}
GOOD_POLICY = """
from fastexit_bench.analysis.policies import ExitPolicy

class Good(ExitPolicy):
    name = "good"
    def grid(self, outputs):
        return [0.5]
    def exit_mask(self, outputs, value):
        return outputs.logits.max(-1) > value
"""


def craft_inputs(root: Path, resources: Path) -> None:
    """Inputs that break one rule each: another model's sweep, an edited record, malformed artefacts, a
    header-only sweep, a corrupt local backbone, bad dataset declarations, plug-in policies that break their
    contract."""
    for suffix in (".csv", ".scores.csv", ".selection.csv"):
        shutil.copy(root / f"sweep{suffix}", root / f"other_sweep{suffix}")
    record = json.loads((root / "sweep.json").read_text())
    record["artifact"]["model_sha256"] = "0" * 64  # a sweep of another model's weights
    record["files"] = {k.replace("sweep", "other_sweep"): v for k, v in record["files"].items()}
    (root / "other_sweep.json").write_text(json.dumps(record))
    for suffix in (".csv", ".scores.csv", ".selection.csv"):
        frame = pd.read_csv(root / f"sweep{suffix}")
        frame.iloc[:0].to_csv(root / f"empty_sweep{suffix}", index=False)
    (root / "empty_sweep.json").write_text(json.dumps({k: v for k, v in record.items() if k != "files"}))
    shutil.copytree(root / "model", root / "edited_model")
    info = json.loads((root / "model" / "training.json").read_text())
    (root / "edited_model" / "training.json").write_text(json.dumps(info | {"dataset": "ag_news"}))
    with np.load(root / "validation.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    labels = arrays["labels"].copy()
    labels[0] = 99
    for name, change in {
        "label_outside": {"labels": labels},
        "lengths_differ": {"labels": arrays["labels"][:-1]},
        "no_examples": {
            k: v[:, :0] if k == "logits" else v[:0] for k, v in arrays.items() if k != "metadata"
        },
    }.items():
        np.savez(root / f"{name}.npz", **(arrays | change))
    np.savez(root / "no_logits.npz", **{k: v for k, v in arrays.items() if k != "logits"})
    shutil.copytree(resources / "backbones" / "tiny-bert", root / "corrupt_backbone")
    (root / "corrupt_backbone" / "model.safetensors").write_bytes(b"\x00" * 64)
    for name, text in {
        "empty": "",
        "list": "- a\n- b\n",
        "bad_name": (Path(__file__).parent / "user_datasets" / "shop_reviews.yaml")
        .read_text()
        .replace("name: shop_reviews", "name: ../Shop Reviews"),
        "repeated_labels": (Path(__file__).parent / "user_datasets" / "shop_reviews.yaml")
        .read_text()
        .replace("[negative, positive]", "[good, good]"),
        "carve": (Path(__file__).parent / "user_datasets" / "shop_reviews.yaml")
        .read_text()
        .replace("test: 0.2}", "test: -0.2}"),
    }.items():
        (root / "declarations" / name).mkdir(parents=True)
        (root / "declarations" / name / "d.yaml").write_text(text)
    (root / "plugins").mkdir()
    (root / "plugins" / "broken_raises.py").write_text(BROKEN_POLICIES["Raises"])
    for name, body in BROKEN_POLICIES.items():
        if name != "Raises":
            (root / "plugins" / f"broken_{name.lower()}.py").write_text(f"{GOOD_POLICY}\n{body}\n")


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
        "data prepare/too long": ["data", "prepare", "bbc_news", "--backbone", "tiny-bert", *res]
        + ["--max-length", "100000", "--out", str(root / "p.json")],
        "flops/too long": ["flops", "--backbone", "tiny-bert", *res, "--length", "100000"],
        "data show/mirror is a file": ["data", "show", "sst2", "--mirror", str(root / "a_file")],
        "evaluate/unknown device": [
            "evaluate",
            *res,
            "--device",
            "tpu9",
            str(model),
            "--out",
            str(root / "e.npz"),
        ],
        "evaluate/edited record": [*evaluate, str(root / "edited_model"), "--out", str(root / "e.npz")],
        "latency/another model's selection": [
            *latency,
            str(model),
            "--selection",
            str(root / "other_sweep.selection.csv"),
            "--out",
            str(root / "l.json"),
        ],
        "report/another model's artefacts": [*report, "--sweeps", str(root / "other_sweep.csv")]
        + ["--artifacts", str(dev), "--tables", str(root / "t")],
        "report/no reference model": [*report, "--sweeps", str(sweep), "--artifacts", str(dev)]
        + ["--tables", str(root / "t")],  # the default --reference baseline was not swept
        "report/a sweep twice": [*report, "--sweeps", str(sweep), str(sweep), "--artifacts", str(dev)]
        + ["--tables", str(root / "t")],
        "report/a header-only sweep": [*report, "--sweeps", str(root / "empty_sweep.csv")]
        + ["--artifacts", str(dev), "--tables", str(root / "t")],
        **{
            f"sweep/{name}": ["sweep", str(root / f"{name}.npz"), "--out", str(root / "s.csv")]
            for name in ("label_outside", "lengths_differ", "no_examples", "no_logits")
        },
        "backbone show/corrupt weights": ["backbone", "show", str(root / "corrupt_backbone")],
        **{
            f"data show/declaration {name}": [
                "--dataset-dir",
                str(root / "declarations" / name),
                "data",
                "show",
                "bbc_news",
            ]
            for name in ("empty", "list", "bad_name", "repeated_labels", "carve")
        },
        **{
            f"sweep/policy {name}": ["sweep", str(dev), "--policies", f"broken_{name.lower()}:{name}"]
            + ["--out", str(root / "s.csv")]
            for name in BROKEN_POLICIES
        },
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
def test_bad_input_or_output_exits_2_with_one_line_and_changes_nothing(
    made, resources, capsys, monkeypatch, case
):
    monkeypatch.syspath_prepend(str(made / "plugins"))
    argv = cases(made, resources)[case]
    before = snapshot(made)
    assert main(argv) == 2, case
    err = capsys.readouterr().err.strip()  # progress bars of what loaded before the problem may come first
    assert err.splitlines()[-1].startswith("fastexit-bench: error: ") and "Traceback" not in err, err
    assert snapshot(made) == before, case


# Round two: a full disk, an interrupt, a kill between the files of a result, an output inside an input, a
# name that escapes its folder. Each writing command runs for real (tiny model) into the fault.

WRITERS = ("data prepare", "backbone show", "train", "evaluate", "sweep", "latency", "serve-bench", "report")
WRITERS += ("claims", "leaderboard", "artefact export")


@pytest.fixture(scope="module")
def report_made(made):
    """A report of the tiny model (its points are what `claims` reads)."""
    tables = made / "report"
    args = ["report", "--name", "r", "--sweeps", str(made / "sweep.csv"), "--reference", "deebert"]
    args += ["--artifacts", str(made / "validation.npz"), str(made / "test.npz"), "--tables", str(tables)]
    assert main([*args, "--plots", str(made / "report_plots")]) == 0
    return tables


def writing(root: Path, resources: Path, out: Path) -> dict[str, list[str]]:
    """Each writing command, run on the tiny model's files, its outputs going into the folder ``out``."""
    res = ["--resources", str(resources)]
    model, dev = root / "model", root / "validation.npz"
    cpu = [*res, "--device", "cpu"]
    return {
        "data prepare": ["data", "prepare", "bbc_news", "--backbone", "tiny-bert", *res]
        + ["--max-train", "16", "--max-eval", "16", "--max-length", "32", "--out", str(out / "p.json")],
        "backbone show": ["backbone", "show", "tiny-bert", *res, "--out", str(out / "b.json")],
        "train": [*TRAIN, "--dataset", "bbc_news", *res, "--out", str(out / "m")],
        "evaluate": ["evaluate", str(model), "--max-eval", "8", *cpu, "--out", str(out / "e.npz")],
        "sweep": ["sweep", str(dev), "--test", str(root / "test.npz"), "--out", str(out / "s.csv")],
        "latency": ["latency", str(model), "--selection", str(root / "sweep.selection.csv"), *cpu]
        + ["--examples", "4", "--batch-sizes", "1", "--repeats", "1", "--out", str(out / "l.json")],
        "serve-bench": ["serve-bench", str(model), "--policy", "entropy", "--value", "0.5", *cpu]
        + ["--examples", "8", "--queries", "16", "--warmup", "2", "--search-steps", "1"]
        + ["--out", str(out / "v.json")],
        "report": ["report", "--name", "r", "--sweeps", str(root / "sweep.csv"), "--reference", "deebert"]
        + ["--artifacts", str(dev), "--tables", str(out / "t"), "--plots", str(out / "p")],
        "claims": ["claims", "--points", str(root / "report" / "r_points.csv"), "--out", str(out / "c")],
        "leaderboard": ["leaderboard", str(dev), str(root / "test.npz"), "--out", str(out / "lb.md")],
        "artefact export": ["artefact", "export", str(dev), "--out", str(out / "x.npz")],
    }


def test_every_writing_command_is_in_the_round_two_matrix(made, resources, tmp_path):
    from fastexit_bench.cli import COMMANDS as MODULES

    assert set(writing(made, resources, tmp_path)) == set(WRITERS)
    assert len(MODULES) == 13  # a new command module: add its writing case here


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a full device: a 3 MB tmpfs filled to its last block where the test may mount one, else
    (no root, no mount) a folder where every file's publication fails with ENOSPC."""
    folder = tmp_path / "full"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)]
    if os.geteuid() == 0 and subprocess.run(mount, capture_output=True, check=False).returncode == 0:
        with suppress(OSError), open(folder / "filler", "wb", buffering=0) as handle:
            while True:
                handle.write(b"\0" * 4096)
        yield folder
        subprocess.run(["umount", "-l", str(folder)], check=False)
        return
    replace = os.replace

    def no_space(source, target, *args, **kwargs):
        if str(target).startswith(str(folder)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        return replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", no_space)
    yield folder


@pytest.mark.parametrize("command", WRITERS)
def test_a_full_disk_gives_one_line_and_leaves_nothing(
    made, report_made, resources, full_disk, capsys, command
):
    before, full_before = snapshot(made), snapshot(full_disk)
    assert main(writing(made, resources, full_disk)[command]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fastexit-bench: error: no space left on the device"), err[-3:]
    assert snapshot(full_disk) == full_before and snapshot(made) == before


def interrupted_at(monkeypatch, call: int, during_publication: bool = False) -> list[int]:
    """Make the ``call``-th file rename (of a result's publication only, if ``during_publication``) raise
    KeyboardInterrupt, as Ctrl-C there would; returns the running count of renames."""
    from fastexit_bench import io

    count, replace, publishing = [0], os.replace, [not during_publication]

    def rename(*args, **kwargs):
        if publishing[0]:
            count[0] += 1
            if count[0] == call:
                raise KeyboardInterrupt
        return replace(*args, **kwargs)

    publish = io.FileSet.publish

    def watched(self, record):
        publishing[0] = True
        try:
            return publish(self, record)
        finally:
            publishing[0] = not during_publication

    monkeypatch.setattr(os, "replace", rename)
    monkeypatch.setattr(io.FileSet, "publish", watched)
    return count


@pytest.mark.parametrize("command", WRITERS)
def test_an_interrupt_exits_130_with_one_line_and_publishes_nothing(
    made, report_made, resources, tmp_path, monkeypatch, capsys, command
):
    out = tmp_path / "out"
    before = snapshot(made)
    interrupted_at(monkeypatch, 1)
    assert main(writing(made, resources, out)[command]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fastexit-bench: error: ") and "interrupt" in err[-1], err[-3:]
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], snapshot(out)
    assert snapshot(made) == before


def test_an_interrupted_train_names_its_checkpoint_and_a_rerun_finishes(
    resources, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "m"
    argv = [*TRAIN, "--dataset", "bbc_news", "--resources", str(resources), "--out", str(out)]
    argv += ["--checkpoint-every", "1"]
    interrupted_at(monkeypatch, 3)  # after two checkpoints
    assert main(argv) == 130
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"its checkpoint {out / 'train.ckpt'} holds stage 1" in line and "resume" in line, line
    monkeypatch.undo()
    assert main(argv) == 0 and (out / "training.json").is_file() and not (out / "train.ckpt").exists()


def test_sigint_to_a_training_process_exits_130_with_one_line(resources, tmp_path):
    out = tmp_path / "m"
    argv = [*TRAIN, "--dataset", "bbc_news", "--resources", str(resources), "--out", str(out)]
    argv[argv.index("--max-steps") + 1] = "100000"
    argv[argv.index("--epochs") + 1] = "1000"
    # A run started in the background inherits SIGINT ignored, and Python then never raises KeyboardInterrupt;
    # a handler here (not an ignore) leaves the child SIGINT's default, as from a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "fastexit_bench", *argv, "--checkpoint-every", "1"],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + 120
        while not (out / "train.ckpt").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()  # never leave training (1,000 epochs) running behind a failed assertion
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "run the same command again to resume" in err.strip().splitlines()[-1]
    assert (out / "train.ckpt").is_file() and not (out / "training.json").exists()


def whole_or_absent(record: Path) -> bool:
    """A result as a reader may meet it: no record, or a record whose every listed file is the one it lists."""
    from fastexit_bench.io import check_file_set, read_json

    if not record.exists():
        return True
    check_file_set(record, read_json(record), "-")
    return True


MULTI_FILE = {
    # writer: (its record inside OUT, argv of a second run that writes different files)
    "sweep": ("s.json", ["--max-drop", "0,3"]),
    "report": ("t/r.json", ["--layout", "fastbert"]),
    "claims": ("c.json", ["--overwrite"]),
    "leaderboard": ("lb.json", ["--policies", "entropy,static"]),
    "train": ("m/training.json", ["--seed", "1", "--overwrite"]),
    "serve-bench": ("v.json", ["--seed", "1", "--overwrite"]),
    "artefact export": ("x.json", ["--overwrite"]),
}


@pytest.mark.parametrize("command", list(MULTI_FILE))
def test_a_kill_between_the_files_of_a_result_never_leaves_a_mix(
    made, report_made, resources, tmp_path, monkeypatch, command
):
    record, again = MULTI_FILE[command]
    argv = writing(made, resources, tmp_path)[command]
    count = interrupted_at(monkeypatch, 0, during_publication=True)  # never: counts a whole publication
    assert main(argv) == 0
    files = count[0]
    assert files >= 2 and whole_or_absent(tmp_path / record)
    second = [*argv, *again] if "--overwrite" in again else [*argv, *again, "--overwrite"]
    for call in sorted({1, 2, files // 2, files}):
        monkeypatch.undo()
        interrupted_at(monkeypatch, call, during_publication=True)
        assert main(second) == 130, call
        assert whole_or_absent(tmp_path / record), call


def test_a_reader_refuses_a_result_stopped_while_publishing(made, resources, tmp_path, monkeypatch, capsys):
    argv = writing(made, resources, tmp_path)["sweep"]
    assert main(argv) == 0
    interrupted_at(monkeypatch, 2, during_publication=True)  # one new CSV in place, the record removed
    assert main([*argv, "--max-drop", "0,3", "--overwrite"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    report = ["report", "--name", "r2", "--sweeps", str(tmp_path / "s.csv"), "--reference", "deebert"]
    report += ["--artifacts", str(made / "validation.npz"), "--tables", str(tmp_path / "t2")]
    assert main([*report, "--plots", str(tmp_path / "p2")]) == 2
    assert "incomplete" in capsys.readouterr().err
    assert not (tmp_path / "t2").exists()


def test_outputs_in_or_around_the_runs_inputs_are_refused(resources, tmp_path, capsys):
    """`train` never writes into, over or around what it reads (backbone, resources, mirror), --overwrite or
    not."""
    backbone, mirror = resources / "backbones" / "tiny-bert", tmp_path / "mirror"
    mirror.mkdir()
    assert main(["backbone", "show", "tiny-bert", "--resources", str(resources)]) == 0
    before = snapshot(resources)
    base = [*TRAIN, "--dataset", "bbc_news", "--resources", str(resources), "--mirror", str(mirror)]
    outs = (backbone, resources, resources / "models" / "m", mirror / "m", tmp_path)
    for out, backbone_arg in [*((o, "tiny-bert") for o in outs), (backbone, str(backbone))]:
        assert main([*base, "--backbone", backbone_arg, "--overwrite", "--out", str(out)]) == 2, out
        assert "an input of this command" in capsys.readouterr().err, out
    assert snapshot(resources) == before and list(mirror.iterdir()) == []


def test_a_name_that_would_escape_its_folder_is_refused(made, tmp_path, capsys):
    for name in ("../../x", "a/b", ".hidden", ""):
        argv = [
            "report",
            "--name",
            name,
            "--sweeps",
            str(made / "sweep.csv"),
            "--tables",
            str(tmp_path / "t"),
        ]
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--artifacts", str(made / "validation.npz"), "--plots", str(tmp_path / "p")])
        assert stop.value.code == 2
        assert "argument --name: expected a plain name" in capsys.readouterr().err.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())
