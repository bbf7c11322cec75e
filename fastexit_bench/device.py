"""Pick the torch device a command runs on."""

from __future__ import annotations

import torch

from fastexit_bench.errors import FastExitError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the GPU when one is visible, else the CPU; asking for a missing GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FastExitError(
            f"device {name!r} requested but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu"
        )
    return device
