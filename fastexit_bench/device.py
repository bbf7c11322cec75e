"""Pick the torch device a command runs on."""

from __future__ import annotations

import torch

from fastexit_bench.errors import FastExitError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the GPU when one is visible, else the CPU; asking for a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FastExitError(
            f"--device {name!r} is not a device torch knows; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in ("cpu", "cuda"):
        raise FastExitError(
            f"--device {name!r}: this suite runs on cpu or cuda; use auto, cpu, cuda or cuda:N"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FastExitError(
            f"device {name!r} requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu"
        )
    return device
