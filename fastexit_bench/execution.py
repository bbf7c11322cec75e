"""How a model runs on a device: numeric precision and attention implementation, resolved once per run.

``auto`` picks the fastest choice that stays correct on the device:
- precision: bf16 autocast on a CUDA GPU that supports it (fp16 with a gradient scaler on older GPUs) and on
  a CPU with native bf16 (avx512_bf16 or AMX in its flags); fp32 elsewhere. Master weights stay fp32 (inference
  holds the layers' weights cast once per run: :func:`weights_cast_once`), and the exit heads run in fp32, so
  losses and the logits policies read are fp32.
- attention: SDPA on a GPU; on a CPU, SDPA in fp32 and eager in bf16 (one MiniLM training step on a CPU
  with avx512_bf16: eager 1.21 s / SDPA 1.11 s in fp32, eager 0.48 s / SDPA 0.65 s in bf16;
  ``benchmarks/train_throughput.py`` measures all four on the machine at hand).
FLOP counts never depend on this: ``models.tracing`` traces eager fp32 components on its own.
Importing this module needs no torch (the CLI reads the defaults).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from fastexit_bench.errors import FastExitError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ATTENTIONS = ("auto", "eager", "sdpa")
RUNTIMES = ("eager", "compile", "cudagraphs", "onnxruntime")
"""How inference runs the model (``runtime.compiled``): PyTorch eager, each layer and head through
``torch.compile``, the same with CUDA graphs on bucketed shapes, or each through ONNX Runtime; training
always runs eager."""
FP32_ONLY_RUNTIMES = ("onnxruntime",)
"""Runtimes that run fp32 only (the exported graphs are fp32); ``auto`` resolves to fp32 under them."""

ONEDNN_PRIMITIVE_CACHE = 16384
"""Kernels oneDNN keeps built, one per operation and input shape (its own default: 1024). In bf16 on a CPU
every matrix product is a oneDNN kernel, and early exit runs layers on many shapes (the rows still in a
batch x the tokens they keep): at the default, compaction serving the SST-2 reference models rebuilt evicted
kernels and reached 0.52x (DeeBERT) and 0.66x (FastBERT) the Offline throughput it has with room for every
shape, at no measured memory cost (``benchmarks/onednn_cache.py``). Set when this module is imported, before
the first kernel is built; a value already in the environment wins."""
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(ONEDNN_PRIMITIVE_CACHE))


@dataclass(frozen=True)
class ExecutionConfig:
    """The one owner of the execution defaults: what the user asks for (``auto`` resolves per device)."""

    precision: str = "auto"
    attention: str = "auto"
    runtime: str = "eager"


@dataclass(frozen=True)
class Execution:
    """What a run actually used, recorded in training records, artefacts and timings."""

    precision: str
    attention: str
    runtime: str = "eager"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


FP32_EAGER = Execution("fp32", "eager")
"""How every run before precision and attention were choosable executed (old records)."""


CPUINFO = "/proc/cpuinfo"
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_flags(cpuinfo: str = CPUINFO) -> set[str] | None:
    """The x86 feature flags the kernel lists for the first CPU, or None where there is no such list."""
    try:
        with open(cpuinfo, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        return None
    return None


def cpu_supports_bf16(cpuinfo: str = CPUINFO) -> bool:
    """Whether the CPU runs bf16 matrix products natively (avx512_bf16 or AMX). oneDNN reports bf16 support on
    any AVX-512 CPU, but without these it emulates bf16: on an Intel Xeon without them (Ice Lake) one training
    step of a MiniLM-sized BERT took 2.35 s in bf16 autocast against 0.81 s in fp32. Where the kernel lists no
    x86 flags (not Linux, or not x86), oneDNN's answer stands."""
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        return bool(flags & NATIVE_BF16_FLAGS)
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(requested: str, device: torch.device, cpu_bf16: bool | None = None) -> str:
    """``auto`` -> the fastest correct precision for ``device``; an impossible request is an error."""
    import torch

    if requested not in PRECISIONS:
        raise FastExitError(f"precision {requested!r} is not one of {PRECISIONS}")
    if device.type == "cuda":
        if requested == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return requested
    if requested == "fp16":
        raise FastExitError(
            "fp16 needs a CUDA GPU (it trains with a gradient scaler); use bf16 or fp32 on the CPU"
        )
    if requested == "auto":
        return "bf16" if (cpu_supports_bf16() if cpu_bf16 is None else cpu_bf16) else "fp32"
    return requested


def resolve_attention(requested: str, device: torch.device, precision: str) -> str:
    """``auto`` -> SDPA on a GPU; on a CPU, SDPA in fp32 and eager in bf16 (see the module docstring)."""
    if requested not in ATTENTIONS:
        raise FastExitError(f"attention {requested!r} is not one of {ATTENTIONS}")
    if requested != "auto":
        return requested
    return "sdpa" if device.type == "cuda" or precision == "fp32" else "eager"


def resolve(config: ExecutionConfig, device: torch.device, cpu_bf16: bool | None = None) -> Execution:
    if config.runtime not in RUNTIMES:
        raise FastExitError(f"runtime {config.runtime!r} is not one of {RUNTIMES}")
    precision = resolve_precision(config.precision, device, cpu_bf16)
    if config.runtime in FP32_ONLY_RUNTIMES and config.precision == "auto":
        precision = "fp32"
    return Execution(precision, resolve_attention(config.attention, device, precision), config.runtime)


def autocast_dtype(precision: str) -> torch.dtype | None:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(precision: str, device: torch.device) -> Any:
    """Mixed-precision autocast for bf16/fp16, nothing for fp32. The block may span many optimizer steps, so
    autocast's cache of low-precision weight copies is off: a cached copy would outlive the step that updated
    its weight."""
    import torch

    dtype = autocast_dtype(precision)
    return (
        torch.autocast(device.type, dtype=dtype, cache_enabled=False) if dtype is not None else nullcontext()
    )


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (whose small gradients underflow); a pass-through otherwise."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@contextmanager
def attention(config: Any, implementation: str) -> Iterator[None]:
    """Run the encoder layers built from the HF ``config`` with ``implementation`` inside the block. Setting it
    costs about 18 us (transformers checks the choice), which a compiled runtime paid at every segment call
    inside a block that had set it already."""
    previous = config._attn_implementation
    if previous == implementation:
        yield
        return
    config._attn_implementation = implementation
    try:
        yield
    finally:
        config._attn_implementation = previous


@contextmanager
def weights_cast_once(layers: torch.nn.Module, precision: str) -> Iterator[None]:
    """Inside the block, the Linear weights of ``layers`` are held in ``precision``'s low-precision type (bf16,
    fp16), and restored at exit; nothing for fp32. Autocast casts every fp32 weight to that type at every
    call, a copy per layer per query that costs more than the layer's own arithmetic at batch 1; holding
    the cast copy gives the same numbers (autocast casts inputs, and leaves a weight already of its type
    alone). Its own cache would do the same but is off in inference mode. Only for inference under
    :func:`running`'s autocast: no weight may change inside, and fp32 FLOP tracing belongs outside."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        yield
        return
    import torch

    held = [
        (module, module.weight.data, None if module.bias is None else module.bias.data)
        for module in layers.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        for module, weight, bias in held:
            module.weight.data = weight.to(dtype)
            if bias is not None:
                module.bias.data = bias.to(dtype)
        yield
    finally:
        for module, weight, bias in held:
            module.weight.data = weight
            if bias is not None:
                module.bias.data = bias


@contextmanager
def running(
    config: Any, execution: Execution, device: torch.device, inference: torch.nn.Module | None = None
) -> Iterator[None]:
    """The attention implementation and autocast of ``execution``, for everything inside the block;
    ``inference``: the encoder layers an inference block runs, their weights cast once
    (:func:`weights_cast_once`) instead of at every call."""
    with attention(config, execution.attention), autocast(execution.precision, device):
        if inference is None:
            yield
        else:
            with weights_cast_once(inference, execution.precision):
                yield
