"""Optimized runtimes for inference: the model cut into segments (the embeddings, each layer, each exit head,
the learned-exit scorer), each compiled once with ``torch.compile`` or exported once to ONNX and run by ONNX
Runtime, or compiled with CUDA graphs (``cudagraphs``: ``torch.compile``'s "reduce-overhead" mode on shapes
padded to buckets). The engine, the serving schedulers and `evaluate` call the segments exactly as they call
the eager model's methods, so exits are still decided on the host between layers, with the same policy code.

Why segments and not one graph: an early exit is a data-dependent branch between layers, and a graph that
contains it either evaluates both sides (TensorRT-LLM #1724) or cannot be exported at all. One graph per
layer, reused at every depth and for every batch and length (dynamic shapes), keeps the exits real and the
compiled code where the FLOPs are.

``torch.compile`` traces a segment under the run's autocast, with the layers' weights already cast once
(``execution.weights_cast_once``), so in bf16 the casts fuse into the compiled kernels; its bf16 numbers
are close to eager bf16's, not equal (inductor keeps fused intermediates in fp32), so a compiled bf16 run's
exits are checked against its own runtime's outputs. ONNX Runtime's graphs are exported and run in fp32."""

from __future__ import annotations

import hashlib
import json
import logging
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fastexit_bench.errors import FastExitError
from fastexit_bench.execution import FP32_ONLY_RUNTIMES, RUNTIMES, Execution, running
from fastexit_bench.io import atomic_path, write_json
from fastexit_bench.models.early_exit import EarlyExitModel
from fastexit_bench.runtime.batches import power_of_two_at_least

log = logging.getLogger(__name__)

ONNX_OPSET = 17
ONNX_INPUTS = {
    "embed": ("input_ids", "attention_mask", "token_type_ids"),
    "layer": ("hidden", "additive_mask"),
    "head": ("hidden", "mask"),
    "step": ("hidden", "additive_mask", "mask"),
    "scorer": ("hidden", "mask"),
}
"""Each segment kind's inputs, in call order; the names the exported graphs use."""
ONNX_OUTPUTS = {
    "embed": ("hidden", "additive_mask"),
    "layer": ("output",),
    "head": ("output",),
    "step": ("output", "logits"),
    "scorer": ("output",),
}


def _dynamic_axes(kind: str) -> dict[str, dict[int, str]]:
    """Batch and length free in every graph: axis 0 is the batch, the length is axis 1 (axis 3 of the
    ``[batch, 1, 1, tokens]`` additive mask); a head's or scorer's output has a batch axis only."""
    names = (*ONNX_INPUTS[kind], *ONNX_OUTPUTS[kind])
    axes = {n: {0: "batch", (3 if n == "additive_mask" else 1): "tokens"} for n in names}
    if kind in ("head", "scorer"):
        axes["output"] = {0: "batch"}
    if kind == "step":
        axes["logits"] = {0: "batch"}
    return axes


class Segment(nn.Module):
    """One piece of the model as a module of its own (what ``torch.compile`` and the ONNX exporter take): the
    embeddings (``index`` None), layer ``index``, head ``index``, both in one (``step``) or the scorer on
    layer ``index``."""

    def __init__(self, model: EarlyExitModel, kind: str, index: int | None = None):
        super().__init__()
        self.model, self.kind, self.index = model, kind, index

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        if self.kind == "embed":
            return self.model.embed(*inputs)
        method = {
            "layer": self.model.run_layer,
            "head": self.model.head_logits,
            "step": self.model.layer_and_head,
            "scorer": self.model.exit_score,
        }
        return method[self.kind](self.index, *inputs)


def segments(model: EarlyExitModel) -> dict[str, Segment]:
    """Every segment inference may run, by name (``embed``, ``layer_3``, ``head_3``, ``step_3``, ``scorer_3``).
    A ``step`` (layer and head in one graph) is what a policy that reads every head runs at each layer: one
    call instead of two, whose fixed cost was a fifth of a MiniLM layer's time at batch 1 under ONNX Runtime."""
    parts = {"embed": Segment(model, "embed")}
    for k in range(model.num_layers):
        parts[f"layer_{k}"] = Segment(model, "layer", k)
        parts[f"head_{k}"] = Segment(model, "head", k)
        parts[f"step_{k}"] = Segment(model, "step", k)
        if model.exit_scorer is not None:
            parts[f"scorer_{k}"] = Segment(model, "scorer", k)
    return parts


class SegmentedModel:
    """The inference interface of :class:`EarlyExitModel` (``embed``, ``run_layer``, ``head_logits``,
    ``exit_score`` and what ``forward_all`` builds from them) with each segment run by a runtime; everything
    else (sizes, config, pooling) is the model's."""

    training = False

    def __init__(self, model: EarlyExitModel, run: dict[str, Callable[..., Any]], execution: Execution):
        self.model, self.run, self.execution = model, run, execution

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def eval(self) -> SegmentedModel:
        return self

    def train(self, mode: bool = True) -> SegmentedModel:
        if mode:
            raise FastExitError(f"the {self.execution.runtime} runtime is for inference only")
        return self

    def embed(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        return self.run["embed"](input_ids, attention_mask, types)

    def run_layer(self, index: int, hidden: Tensor, additive_mask: Tensor) -> Tensor:
        return self.run[f"layer_{index}"](hidden, additive_mask)

    def head_logits(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.run[f"head_{index}"](hidden, mask)

    def layer_and_head(
        self, index: int, hidden: Tensor, additive_mask: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        return self.run[f"step_{index}"](hidden, additive_mask, mask)

    def exit_score(self, index: int, hidden: Tensor, mask: Tensor) -> Tensor:
        return self.run[f"scorer_{index}"](hidden, mask)

    encode = EarlyExitModel.encode
    exit_output = EarlyExitModel.exit_output
    exits = EarlyExitModel.exits
    forward_all = EarlyExitModel.forward_all


SHAPE_BUCKET_TOKENS = 16
"""The ``cudagraphs`` runtime pads the token axis to a multiple of this and the batch to a power of two."""
COMPILE_MODES = {"compile": None, "cudagraphs": "reduce-overhead"}
"""``torch.compile``'s mode for each runtime that compiles."""


def _token_axis(tensor: Tensor) -> int:
    """Where a segment tensor keeps its tokens: ids, masks and hidden states on axis 1, the ``[batch, 1, 1,
    tokens]`` additive mask on axis 3. Logits and scores (2-D and 1-D outputs) have none: only their batch
    is padded and cut back."""
    return 3 if tensor.dim() == 4 else 1


def _padded(tensor: Tensor, batch: int, tokens: int) -> Tensor:
    """``tensor`` grown to ``batch`` rows and ``tokens`` tokens: zeros (no token, not attended) except in an
    additive mask, whose new positions are masked like padding (the dtype's minimum)."""
    shape = list(tensor.shape)
    shape[0], shape[_token_axis(tensor)] = batch, tokens
    if shape == list(tensor.shape):
        return tensor
    fill = torch.finfo(tensor.dtype).min if tensor.dim() == 4 else 0
    out = tensor.new_full(shape, fill)
    out[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return out


def _unpadded(tensor: Tensor, batch: int, tokens: int) -> Tensor:
    """The real rows and tokens of a bucketed output, as a tensor of its own: a CUDA graph's outputs live in
    memory that its next replay overwrites."""
    tensor = tensor[:batch]
    if tensor.dim() >= 3:
        tensor = tensor.narrow(_token_axis(tensor), 0, tokens)
    return tensor.clone()


def bucketed(graph: Callable[..., Any]) -> Callable[..., Any]:
    """``graph`` called on inputs padded to a power-of-two batch and a multiple of
    :data:`SHAPE_BUCKET_TOKENS` tokens, its outputs cut back. CUDA graphs are recorded per shape, and
    compaction makes a new batch size at almost every exit: buckets keep a model at a few dozen shapes.
    Padded rows and tokens are masked, so the real rows' outputs do not change (beyond float rounding)."""

    def call(*inputs: Tensor) -> Any:
        batch, tokens = inputs[0].shape[:2]
        to_batch = power_of_two_at_least(batch)
        to_tokens = -(-tokens // SHAPE_BUCKET_TOKENS) * SHAPE_BUCKET_TOKENS
        if inputs[0].is_cuda:
            torch.compiler.cudagraph_mark_step_begin()  # earlier outputs were copied out: their memory is free
        outputs = graph(*(_padded(t, to_batch, to_tokens) for t in inputs))
        if isinstance(outputs, tuple):
            return tuple(_unpadded(o, batch, tokens) for o in outputs)
        return _unpadded(outputs, batch, tokens)

    return call


def own_code(segment: Segment, name: str) -> Callable[..., Any]:
    """``segment``'s forward as a function with a code object of its own. Dynamo keeps compiled graphs per
    code object and checks a call against each graph kept there: with one shared :meth:`Segment.forward`,
    every call scanned the graphs of every segment of every model compiled in the process (in the runtimes
    benchmark, the third model's full depth at batch 1 ran 1.4x slower compiled than eager)."""
    shared = Segment.forward
    code = shared.__code__.replace(co_name=f"forward_{name}")
    return types.MethodType(types.FunctionType(code, shared.__globals__, code.co_name), segment)


def compiled(model: EarlyExitModel, execution: Execution) -> SegmentedModel:
    """Each segment through ``torch.compile`` (inductor, dynamic batch and length): compiled on first use,
    then reused at every depth, under its own code object (:func:`own_code`). The limits of cached graphs
    are raised so that no segment silently falls back to eager. The ``cudagraphs`` runtime compiles in
    "reduce-overhead" mode, which replays a CUDA graph per input shape, on :func:`bucketed` shapes; on a
    CPU the same bucketed graphs run without CUDA graphs (what the tests check)."""
    mode = COMPILE_MODES[execution.runtime]
    parts = segments(model)
    limit = 4 * len(parts)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    torch._dynamo.config.accumulated_recompile_limit = max(
        torch._dynamo.config.accumulated_recompile_limit, 4 * limit
    )
    run: dict[str, Callable[..., Any]] = {}
    for name, segment in parts.items():
        graph = torch.compile(own_code(segment, name), dynamic=True, mode=mode)
        if mode is not None:
            graph = bucketed(graph)

        def call(*inputs: Tensor, graph: Callable[..., Any] = graph) -> Any:
            with running(model.config, execution, inputs[0].device):
                return graph(*inputs)

        run[name] = call
    return SegmentedModel(model, run, execution)


def _example_inputs(model: EarlyExitModel, kind: str) -> tuple[Tensor, ...]:
    """Small inputs to trace each segment kind with (batch 2, 8 tokens; the graphs take any size)."""
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    if kind == "embed":
        return ids, mask, torch.zeros_like(ids)
    hidden, additive = model.embed(ids, mask, torch.zeros_like(ids))
    return {"layer": (hidden, additive), "step": (hidden, additive, mask.bool())}.get(
        kind, (hidden, mask.bool())
    )


def _weights_key(model: EarlyExitModel, execution: Execution) -> str:
    """What an exported graph depends on: the weights, the architecture and the attention implementation."""
    digest = hashlib.sha256(json.dumps(model.architecture(), sort_keys=True).encode())
    digest.update(execution.attention.encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def export_onnx(model: EarlyExitModel, execution: Execution, cache: Path) -> Path:
    """Export every segment to ``cache/<key>/<segment>.onnx`` once (``key``: the weights and attention), and
    return that folder; a folder with its ``done.json`` is reused as it is."""
    folder = Path(cache) / _weights_key(model, execution)
    if (folder / "done.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    parts = segments(model)
    with torch.no_grad(), running(model.config, execution, torch.device("cpu")), warnings.catch_warnings():
        # transformers' SDPA path asks "no mask given?" in Python; the exporter warns that the answer becomes a
        # constant, which is right here: every segment is called with its mask
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        for name, segment in parts.items():
            with atomic_path(folder / f"{name}.onnx") as tmp:
                torch.onnx.export(
                    segment,
                    _example_inputs(model, segment.kind),
                    str(tmp),
                    input_names=list(ONNX_INPUTS[segment.kind]),
                    output_names=list(ONNX_OUTPUTS[segment.kind]),
                    dynamic_axes=_dynamic_axes(segment.kind),
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
            model.eval()  # the exporter restores the wrapper's training flag on everything under it
    write_json(folder / "done.json", {"segments": sorted(parts), "opset": ONNX_OPSET})
    log.info("exported %d segments to %s", len(parts), folder)
    return folder


_POOL_THREADS: list[int] = []


def _share_thread_pool(ort: Any, threads: int) -> None:
    """One thread pool for every session of the process. A session per segment with a pool each left the
    pools of the segments just run spinning against the next one's threads (full depth at batch 1 ran ten
    times slower than its segments timed alone); without spinning each call paid the threads' wake-up.
    ONNX Runtime sizes the shared pool once, before its first session: later sizes are refused."""
    if not _POOL_THREADS:
        ort.capi._pybind_state.set_global_thread_pool_sizes(threads, 1)
        _POOL_THREADS.append(threads)
    elif _POOL_THREADS[0] != threads:
        raise FastExitError(
            f"ONNX Runtime's thread pool already has {_POOL_THREADS[0]} threads in this process; "
            f"{threads} were asked for (run one thread count per process)"
        )


def onnx_sessions(model: EarlyExitModel, execution: Execution, cache: Path, threads: int) -> SegmentedModel:
    """Each segment as an ONNX Runtime session on the CPU (exported once to ``cache``)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise FastExitError(
            "--runtime onnxruntime needs ONNX Runtime: pip install 'fastexit-bench[onnx]'"
        ) from None
    folder = export_onnx(model, execution, cache)
    options = ort.SessionOptions()
    options.use_per_session_threads = False
    _share_thread_pool(ort, threads)
    run: dict[str, Callable[..., Any]] = {}
    for name in segments(model):
        session = ort.InferenceSession(
            str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"]
        )
        declared = [i.name for i in session.get_inputs()]  # the exporter drops inputs a graph does not read
        kind = name.rsplit("_", 1)[0]

        def call(*inputs: Tensor, session: Any = session, declared: list[str] = declared, kind: str = kind):
            feed = {n: t.cpu().numpy() for n, t in zip(ONNX_INPUTS[kind], inputs) if n in declared}
            outputs = [torch.from_numpy(o) for o in session.run(None, feed)]
            return tuple(outputs) if len(outputs) > 1 else outputs[0]

        run[name] = call
    return SegmentedModel(model, run, execution)


def with_runtime(
    model: EarlyExitModel, execution: Execution, cache: Path | None = None, threads: int | None = None
) -> EarlyExitModel | SegmentedModel:
    """``model`` itself for the eager runtime, else its segments under ``execution.runtime`` (ONNX graphs
    cached under ``cache``: beside the trained model)."""
    if execution.runtime not in RUNTIMES:
        raise FastExitError(f"runtime {execution.runtime!r} is not one of {RUNTIMES}")
    if execution.runtime == "eager":
        return model
    if execution.runtime in FP32_ONLY_RUNTIMES and execution.precision != "fp32":
        raise FastExitError(
            f"the {execution.runtime} runtime runs fp32 only; add --precision fp32 (got {execution.precision})"
        )
    if execution.runtime in COMPILE_MODES:
        return compiled(model, execution)
    if next(model.parameters()).device.type != "cpu":
        raise FastExitError("the onnxruntime runtime runs on the CPU here; add --device cpu")
    if cache is None:
        raise FastExitError("the onnxruntime runtime needs a folder to keep its exported graphs in")
    return onnx_sessions(model, execution, cache, threads or torch.get_num_threads())
