"""Exit policies: given every layer's outputs for a batch and one parameter value, the exit layer per example.

A policy is one class. It answers, for each layer k and example, "may this example stop after layer k?"
using only the outputs of layers 1..k (:meth:`ExitPolicy.exit_mask`), so the same class drives the
one-pass sweep over a saved artefact and the layer-by-layer inference engine. The exit layer is the
first layer where the mask holds, or the last layer.

A user policy lives in the user's own module and is named by import path, e.g.
``--policies entropy,my_pkg.policies:Margin``; see README for a ten-line example.
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import ClassVar, Literal

import numpy as np
from scipy.special import entr, expit

from fastexit_bench.analysis.artifact import LayerOutputs
from fastexit_bench.analysis.calibration import fit_temperatures, scaled
from fastexit_bench.errors import FastExitError, PolicyError
from fastexit_bench.registry import KEY_PATTERN, Registry


@contextmanager
def policy_errors(policy: ExitPolicy, value: object = None) -> Iterator[None]:
    """Turn an exception raised inside a policy (a user's own, most often) into one line that names the
    policy and the value it was deciding at."""
    try:
        yield
    except FastExitError:
        raise
    except Exception as error:  # any failure of the policy's code is reported the same way
        at = f" at {policy.parameter} {value}" if value is not None else ""
        raise PolicyError(
            f"policy {policy.name!r} raised {type(error).__name__}{at}: {error}; fix the policy or "
            "leave it out of the policies to sweep"
        ) from error


Reads = Literal["logits", "exit_scores", "nothing"]
READS = typing.get_args(Reads)


class ExitPolicy(ABC):
    """Base class of exit policies.

    Class attributes:
        name: short name used in tables.
        parameter: what the swept value means ("threshold", "patience", "layer", ...).
        reads: which per-layer outputs a decision needs, for cost accounting: "logits" (every head
            up to the exit runs), "exit_scores" (BERxiT's scorer runs each layer, one head at the
            exit), or "nothing" (only the exit layer's head runs).
        tasks: the tasks it can decide on (a policy reading class probabilities has none on regression).
    """

    name: ClassVar[str]
    parameter: ClassVar[str] = "threshold"
    reads: ClassVar[Reads] = "logits"
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")

    @abstractmethod
    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        """Default parameter values to sweep for these outputs."""

    def checked_grid(self, outputs: LayerOutputs) -> list[float]:
        """:meth:`grid`, refused unless every value is a finite number (a NaN would sweep as a row); it may be
        empty (patience on a one-layer model)."""
        with policy_errors(self):
            values = [float(v) for v in self.grid(outputs)]
        if not np.isfinite(values).all():
            raise PolicyError(
                f"policy {self.name!r}: its grid {values[:5]} holds values that are not finite; fix grid()"
            )
        return values

    def check(self, value: float, outputs: LayerOutputs) -> None:
        """Raise :class:`PolicyError` for a value this policy cannot take."""

    def fit(self, outputs: LayerOutputs) -> None:
        """Learn what the policy needs from labelled outputs of the split operating points are chosen on (the
        sweep calls it on dev, never on the reported split); most policies learn nothing."""

    @abstractmethod
    def exit_mask(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        """``[layers, batch]`` bool: may the example exit after layer k, judged on layers 1..k only."""

    def exit_layers(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        """1-based exit layer per example: the first layer allowed to exit, else the last."""
        with policy_errors(self, value):
            self.check(value, outputs)
            mask = np.array(self.exit_mask(outputs, value))
        if mask.dtype != bool:
            raise PolicyError(
                f"policy {self.name!r} returned a mask of {mask.dtype} values; exit_mask returns booleans "
                "(True: may exit after that layer)"
            )
        if mask.shape != outputs.logits.shape[:2]:
            raise PolicyError(
                f"policy {self.name!r} returned a mask of shape {mask.shape}, "
                f"expected [layers, batch] = {outputs.logits.shape[:2]}"
            )
        mask[-1] = True
        return mask.argmax(axis=0) + 1

    def sweep_exit_layers(self, outputs: LayerOutputs, values: Sequence[float]) -> list[np.ndarray]:
        """:meth:`exit_layers` for each value (threshold policies compute their signal once)."""
        return [self.exit_layers(outputs, value) for value in values]


POLICIES: Registry[type[ExitPolicy]] = Registry("policy", plural="policies")
"""The built-in policies, each registered by its class's ``name`` (``@POLICIES.add``); a user's is named by
import path instead."""


class ThresholdPolicy(ExitPolicy):
    """Exit when a per-layer signal is below (or above) the threshold; the signal is computed once."""

    below: ClassVar[bool] = True
    bounds: ClassVar[tuple[float, float] | None] = None

    @abstractmethod
    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        """``[layers, batch]`` per-layer confidence or uncertainty."""

    def check(self, value: float, outputs: LayerOutputs) -> None:
        if self.bounds and not self.bounds[0] <= value <= self.bounds[1]:
            raise PolicyError(
                f"policy {self.name!r}: {self.parameter} {value} is outside "
                f"[{self.bounds[0]}, {self.bounds[1]}]"
            )

    def exit_mask(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        return self._passes(self.signal(outputs), value)

    def _passes(self, signal: np.ndarray, value: float) -> np.ndarray:
        return signal < value if self.below else signal > value

    def sweep_exit_layers(self, outputs: LayerOutputs, values: Sequence[float]) -> list[np.ndarray]:
        with policy_errors(self):
            signal = self.signal(outputs)
        layers = []
        for value in values:
            with policy_errors(self, value):
                self.check(value, outputs)
                mask = self._passes(signal, value)
            mask[-1] = True
            layers.append(mask.argmax(axis=0) + 1)
        return layers


def _classification_only(policy: ExitPolicy, outputs: LayerOutputs) -> None:
    if outputs.task == "regression":
        raise PolicyError(
            f"policy {policy.name!r} needs class probabilities and the task is regression; "
            "use patience, learned, static or oracle"
        )


@POLICIES.add
class Entropy(ThresholdPolicy):
    """DeeBERT: exit when the entropy of the softmax (nats) is below S."""

    name = "entropy"
    bounds = (0.0, float("inf"))
    tasks = ("classification",)

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(np.linspace(0.0, np.log(outputs.logits.shape[-1]), 13))

    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        _classification_only(self, outputs)
        # entr(p) = -p log p elementwise; scipy.stats.entropy is the same sum with ~20x the call
        # overhead, which the inference engine would pay at every layer
        return entr(outputs.probabilities()).sum(axis=-1)


@POLICIES.add
class Speed(Entropy):
    """FastBERT: exit when the normalized entropy -sum p log p / log N is below the speed."""

    name = "speed"
    parameter = "speed"
    bounds = (0.0, 1.0)

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(np.round(np.linspace(0.0, 1.0, 11), 2))

    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        return super().signal(outputs) / np.log(outputs.logits.shape[-1])


@POLICIES.add
class MaxProb(ThresholdPolicy):
    """Exit when the top class probability exceeds tau."""

    name = "max_prob"
    below = False
    bounds = (0.0, 1.0)
    tasks = ("classification",)

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(np.round(np.linspace(1.0 / outputs.logits.shape[-1], 1.0, 13), 4))

    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        _classification_only(self, outputs)
        return outputs.probabilities().max(-1)


class TemperatureScaled:
    """Mixin: decide on exit k's logits divided by a temperature fitted on dev (``calibration``), so that a
    confidence threshold means the same at every exit."""

    temperatures: np.ndarray | None = None

    def fit(self, outputs: LayerOutputs) -> None:
        _classification_only(self, outputs)
        self.temperatures = fit_temperatures(outputs)

    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        if self.temperatures is None or len(self.temperatures) < outputs.num_layers:
            raise PolicyError(
                f"policy {self.name!r} is fitted on labelled dev outputs first (the sweep does it); "
                "call fit(dev outputs) before deciding"
            )
        return super().signal(scaled(outputs, self.temperatures))


@POLICIES.add
class EntropyCalibrated(TemperatureScaled, Entropy):
    """DeeBERT's entropy on temperature-scaled logits, one temperature per exit fitted on dev."""

    name = "entropy_calibrated"


@POLICIES.add
class MaxProbCalibrated(TemperatureScaled, MaxProb):
    """The top class probability of temperature-scaled logits, one temperature per exit fitted on dev."""

    name = "max_prob_calibrated"


@POLICIES.add
class Learned(ThresholdPolicy):
    """BERxiT: exit when the learning-to-exit certainty sigmoid(score) exceeds tau."""

    name = "learned"
    below = False
    bounds = (0.0, 1.0)
    reads = "exit_scores"

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(np.round(np.linspace(0.4, 1.0, 13), 2))

    def signal(self, outputs: LayerOutputs) -> np.ndarray:
        if outputs.exit_scores is None:
            raise PolicyError(
                "policy 'learned' needs learned-exit scores, and this model has none; "
                "train it with --recipe berxit"
            )
        return expit(outputs.exit_scores)


@POLICIES.add
class Patience(ExitPolicy):
    """PABEE: exit once the prediction has stayed the same for t consecutive layers after it first appeared
    (t agreements in a row); for regression, once it has changed by less than ``tolerance`` t times in a row."""

    name = "patience"
    parameter = "patience"
    tolerance: ClassVar[float] = 0.1

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(range(1, outputs.num_layers))

    def check(self, value: float, outputs: LayerOutputs) -> None:
        if value < 1 or value != int(value):
            raise PolicyError(f"policy 'patience': patience must be a whole number >= 1, got {value}")

    def exit_mask(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        predictions = outputs.predictions()
        if outputs.task == "regression":
            same = np.abs(np.diff(predictions, axis=0)) < self.tolerance
        else:
            same = predictions[1:] == predictions[:-1]
        streak = np.zeros(predictions.shape, dtype=int)
        for k in range(1, predictions.shape[0]):
            streak[k] = np.where(same[k - 1], streak[k - 1] + 1, 0)
        return streak >= value


@POLICIES.add
class Static(ExitPolicy):
    """Always exit after layer k (the truncation baseline that policies must beat)."""

    name = "static"
    parameter = "layer"
    reads = "nothing"

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return list(range(1, outputs.num_layers + 1))

    def check(self, value: float, outputs: LayerOutputs) -> None:
        if value != int(value) or not 1 <= value <= outputs.num_layers:
            raise PolicyError(
                f"policy 'static': layer must be a whole number in 1..{outputs.num_layers}, got {value}"
            )

    def exit_mask(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        layers = np.arange(1, outputs.num_layers + 1)[:, None]
        return np.broadcast_to(layers >= value, outputs.logits.shape[:2])


@POLICIES.add
class Oracle(ExitPolicy):
    """The earliest layer whose prediction is correct (regression: no worse than the last layer's);
    an upper bound no real policy can reach, since it reads the labels."""

    name = "oracle"
    parameter = "none"

    def grid(self, outputs: LayerOutputs) -> Sequence[float]:
        return [0.0]

    def exit_mask(self, outputs: LayerOutputs, value: float) -> np.ndarray:
        if outputs.labels is None:
            raise PolicyError("policy 'oracle' needs labels, and these outputs have none")
        predictions = outputs.predictions()
        if outputs.task == "regression":
            error = np.abs(predictions - outputs.labels)
            return error <= error[-1]
        return predictions == outputs.labels


DEFAULT_POLICIES = (
    "entropy",
    "speed",
    "patience",
    "max_prob",
    "learned",
    "entropy_calibrated",
    "max_prob_calibrated",
)
"""What a sweep runs when no policy is named: each one that applies to the artefact."""
REFERENCE_POLICIES = ("static", "oracle")
"""Added to every sweep: scores and operating points are relative to static truncation."""


def _contract_problem(policy: type[ExitPolicy]) -> str | None:
    name = getattr(policy, "name", None)
    if not isinstance(name, str):
        return "has no name (class attribute `name`)"
    if not KEY_PATTERN.match(name):
        return f"is named {name!r}, not a plain name (lower-case letters, digits, - and _)"
    if name in POLICIES:
        return f"is named {name!r} like the built-in policy; name it otherwise"
    if policy.reads not in READS:
        return f"reads {policy.reads!r}; `reads` is one of {', '.join(READS)}"
    return None


def resolve_policy(spec: str) -> ExitPolicy:
    """A built-in policy by name, or a user's ``package.module:ClassName`` once its class keeps the contract
    (a plain name of its own, a documented ``reads``), so a plug-in never passes for a built-in's rows."""
    policy = POLICIES.resolve(spec, base=ExitPolicy, error=PolicyError)
    if ":" in spec:
        problem = _contract_problem(policy)
        if problem:
            raise PolicyError(f"policy {spec}: the class {problem}")
    try:
        return policy()
    except Exception as error:
        raise PolicyError(
            f"policy {spec} cannot be created ({type(error).__name__}: {error}); fix its class"
        ) from error
