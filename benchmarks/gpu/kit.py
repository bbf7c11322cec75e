"""The GPU run kit's bundle: what a GPU machine without network, ``datasets``, ``fvcore`` or the offline
weights needs to run this suite's GPU benchmarks, small enough to travel with a command (< 64 MiB).

``bundle`` (run here, where the mirror, the weights and a package index are) writes BUNDLE/:

- ``wheels/``: the packages such a machine lacks (``datasets``, ``fvcore`` and their small dependencies),
  at the versions installed here, for CPython 3.12;
- ``backbones/<name>/``: each backbone's config and tokenizer, no weights;
- ``tokenized/<backbone>.<dataset>.<split>/``: the rows each benchmark reads, tokenized here;
- ``artifacts/``: evaluation artefacts whose exits the latency benchmark replays, and ``manifest.json``;
- ``runtimes/``: the reference models' artefacts, rows and operating points that ``benchmarks/runtimes.py``
  times under every runtime (eager, torch.compile, CUDA graphs, bf16) on the GPU.

``materialize`` (run there) gives each backbone random weights: compute does not depend on weight values,
so training throughput and latency are those of the real architecture, and exits are replayed from the
artefacts (``benchmarks/exit_latency.py --replay``). ``run`` runs the benchmarks; ``run.sh`` beside this
file does all of it on the GPU machine:

    python benchmarks/gpu/kit.py bundle --mirror ../shared/data --out .gpu
    benchmarks/gpu/run.sh .gpu          # there; DEVICE=cpu runs the same paths on a CPU
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
WHEELS = ("datasets", "dill", "multiprocess", "fvcore", "iopath", "yacs", "termcolor")
CASES = "minilm-l6:sst2,me5-small:book_review"
REPLAYS = (
    "results/reference/sst2_minilm/exits/sst2.deebert.seed0.validation.npz:entropy:0.289,0.462,0.578",
    "results/reference/sst2_minilm/exits/sst2.fastbert.seed0.validation.npz:speed:0.5,0.8,0.9",
)
# the DeeBERT values are its dev-chosen thresholds within 0, 1 and 2 points (results/reference/tables/sst2_minilm_paper.md)
TRAIN_EXAMPLES, TRAIN_MAX_LENGTH = 512, 128  # what benchmarks/train_throughput.py loads


def bundled_rows(tokenized: Path, backbone: str, dataset: str, split: str) -> datasets.Dataset:
    """Rows written by ``bundle`` for (backbone, dataset, split); ``backbone`` may be a folder of that name."""
    return datasets.load_from_disk(str(Path(tokenized) / f"{Path(backbone).name}.{dataset}.{split}"))


def _download_wheel(name: str, out: Path) -> None:
    """The CPython 3.12 wheel of ``name`` at the version installed here; built here if only an sdist exists."""
    pin = f"{name}=={version(name)}"
    platforms = [
        a
        for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        for a in ("--platform", p)
    ]
    download = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
        *platforms,
        "-d",
        str(out),
        pin,
    ]
    if subprocess.run(download, check=False, capture_output=True).returncode != 0:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), pin], check=True
        )


def save_rows(rows: datasets.Dataset, out: Path) -> None:
    rows.flatten_indices().save_to_disk(str(out))


def bundle(args: argparse.Namespace) -> None:
    from transformers import AutoTokenizer

    from fastexit_bench.analysis.artifact import ExitArtifact
    from fastexit_bench.data.config import DataConfig
    from fastexit_bench.data.spec import DATASETS
    from fastexit_bench.data.tokenized import load_tokenized
    from fastexit_bench.io import write_json
    from fastexit_bench.locations import Locations
    from fastexit_bench.models.backbones import load_backbone
    from fastexit_bench.provenance import collect
    from fastexit_bench.runtime.trained import artifact_rows

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    for folder in ("wheels", "backbones", "tokenized", "artifacts"):
        (out / folder).mkdir(parents=True)
    if args.wheels:
        for name in WHEELS:
            _download_wheel(name, out / "wheels")

    backbones: dict[str, bool] = {}

    def save_backbone(name: str):
        if name not in backbones:
            model, tokenizer, resolved = load_backbone(name)
            model.config.save_pretrained(out / "backbones" / name)
            tokenizer.save_pretrained(out / "backbones" / name)
            backbones[name] = bool(resolved.has_pooler)
        return AutoTokenizer.from_pretrained(out / "backbones" / name)

    cases = [case.split(":") for case in args.cases.split(",") if case]
    for backbone, dataset in cases:
        spec = DATASETS.get(dataset)
        _, rows = load_tokenized(
            spec,
            spec.train_split,
            save_backbone(backbone),
            DataConfig(
                max_train=TRAIN_EXAMPLES, max_eval=TRAIN_EXAMPLES, max_length=TRAIN_MAX_LENGTH, seed=0
            ),
            Locations(mirror=args.mirror),
        )
        save_rows(rows, out / "tokenized" / f"{backbone}.{dataset}.{spec.train_split}")
    replays = []
    for entry in filter(None, args.replay):
        path, policy, values = entry.split(":")
        artifact = ExitArtifact.load(Path(path))
        meta = artifact.metadata
        rows = artifact_rows(artifact, save_backbone(meta.backbone_name), Locations(mirror=args.mirror))
        save_rows(rows, out / "tokenized" / f"{meta.backbone_name}.{meta.dataset}.{meta.split}")
        shutil.copy(path, out / "artifacts" / Path(path).name)
        replays.append(
            {"artifact": Path(path).name, "backbone": meta.backbone_name, "policy": policy, "values": values}
        )
    if args.runtimes:
        run_benchmark(
            "runtimes.py",
            "--write-bundle",
            str(out / "runtimes"),
            *(["--mirror", args.mirror] if args.mirror else []),
        )
        for entry in json.loads((out / "runtimes" / "runtimes.json").read_text()):
            save_backbone(entry["backbone"])
    manifest = {
        "cases": [f"{b}:{d}" for b, d in cases],
        "replays": replays,
        "backbones": backbones,
        "wheels": sorted(p.name for p in (out / "wheels").iterdir()),
        "provenance": collect(config={k: str(v) for k, v in vars(args).items() if k != "func"}),
    }
    write_json(out / "manifest.json", manifest)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(
        f"wrote {out}: {len(cases)} training cases, {len(replays)} replays, "
        f"{len(manifest['wheels'])} wheels, {size / 2**20:.1f} MiB"
    )


def run_benchmark(script: str, *arguments: str) -> None:
    """``benchmarks/<script>`` with ``arguments`` in this interpreter; its failure stops the kit."""
    subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments], check=True)


def materialize(args: argparse.Namespace) -> None:
    """Each bundled backbone with random weights (seeded), saved under ``DEST/<name>``."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    for name, has_pooler in manifest["backbones"].items():
        source, dest = args.bundle / "backbones" / name, args.dest / name
        torch.manual_seed(0)
        model = AutoModel.from_config(AutoConfig.from_pretrained(source), add_pooling_layer=has_pooler)
        model.save_pretrained(dest)
        AutoTokenizer.from_pretrained(source).save_pretrained(dest)
        print(f"{name}: random weights of its architecture in {dest}")


def run(args: argparse.Namespace) -> None:
    """The training-throughput benchmark over the bundled cases, the replayed latency benchmarks and the
    runtimes table."""
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    tag = "gpu" if args.device == "cuda" else f"{args.device}_kit"
    common = ["--device", args.device, "--tokenized", str(args.bundle / "tokenized")]
    if manifest["cases"]:
        cases = ",".join(
            f"{args.backbones / case.split(':')[0]}:{case.split(':')[1]}" for case in manifest["cases"]
        )
        run_benchmark(
            "train_throughput.py",
            *common,
            "--cases",
            cases,
            "--steps",
            str(args.steps),
            "--rounds",
            str(args.rounds),
            "--weights",
            "random, of each backbone's architecture (benchmarks/gpu/kit.py materialize)",
            "--out",
            str(args.results / f"train_throughput_{tag}.json"),
        )
    for replay in manifest["replays"]:
        recipe = replay["artifact"].split(".")[1]
        run_benchmark(
            "exit_latency.py",
            *common,
            "--replay",
            str(args.bundle / "artifacts" / replay["artifact"]),
            "--backbone",
            str(args.backbones / replay["backbone"]),
            "--policy",
            replay["policy"],
            "--values",
            replay["values"],
            "--precisions",
            args.precisions,
            "--repeats",
            str(args.repeats),
            "--out",
            str(args.results / f"exit_latency_{tag}_{recipe}.json"),
        )
    if (args.bundle / "runtimes" / "runtimes.json").is_file():
        run_benchmark(
            "runtimes.py",
            "--bundle",
            str(args.bundle / "runtimes"),
            "--backbones",
            str(args.backbones),
            "--device",
            args.device,
            "--repeats",
            str(args.repeats),
            "--out",
            str(args.results / f"runtimes_{tag}.json"),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(required=True)
    make = commands.add_parser("bundle", help="write the bundle (here)")
    make.add_argument("--mirror", help="data mirror (../shared/data)")
    make.add_argument("--cases", default=CASES, help="BACKBONE:DATASET,... for training throughput")
    make.add_argument(
        "--replay",
        action="append",
        help="ARTIFACT:POLICY:VALUES for replayed latency "
        f"(repeatable; '' for none; default {', '.join(REPLAYS)})",
    )
    make.add_argument("--no-wheels", dest="wheels", action="store_false", help="leave the wheels out")
    make.add_argument(
        "--no-runtimes", dest="runtimes", action="store_false", help="leave the runtimes table's cases out"
    )
    make.add_argument("--out", type=Path, default=Path(".gpu"))
    make.set_defaults(func=bundle)
    random = commands.add_parser("materialize", help="random-weight backbones from the bundle (there)")
    random.add_argument("bundle", type=Path)
    random.add_argument("dest", type=Path)
    random.set_defaults(func=materialize)
    timed = commands.add_parser("run", help="run the benchmarks on the bundle (there)")
    timed.add_argument("bundle", type=Path)
    timed.add_argument("backbones", type=Path, help="the materialized backbones")
    timed.add_argument("--device", default="cuda")
    timed.add_argument("--results", type=Path, default=Path("results/benchmarks"))
    timed.add_argument("--steps", type=int, default=6)
    timed.add_argument("--rounds", type=int, default=3)
    timed.add_argument("--repeats", type=int, default=5)
    timed.add_argument("--precisions", default="fp32,bf16")
    timed.set_defaults(func=run)
    args = parser.parse_args()
    if getattr(args, "replay", ()) is None:
        args.replay = list(REPLAYS)
    args.func(args)


if __name__ == "__main__":
    main()
