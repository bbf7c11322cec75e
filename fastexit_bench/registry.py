"""One generic registry for every plug-in kind (datasets, backbones, heads, policies, recipes, losses).

Keys become Snakemake wildcards and path parts, so they are restricted to ``^[a-z][a-z0-9_-]*$``.
Entries live in the modules listed at construction and are imported on first lookup, so listing
or validating names never imports torch. Code plug-ins are also named by import path,
``package.module:ClassName`` (class names keep their case): :meth:`Registry.resolve` takes either.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fastexit_bench.errors import FastExitError, UnknownNameError

T = TypeVar("T")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
"""``package.module:Name``; the workflow schema uses the same pattern (tests/test_schema.py)."""


class Registry(Generic[T]):
    """Name -> entry mapping with strict keys, duplicate detection and helpful misses."""

    def __init__(
        self,
        kind: str,
        modules: tuple[str, ...] = (),
        loader: Callable[[], None] | None = None,
        plural: str | None = None,
    ) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._modules = modules
        self._loader = loader
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name``; a bad or duplicate key is a programming error."""
        if not KEY_PATTERN.match(name):
            raise ValueError(f"{self.kind} key {name!r} must match {KEY_PATTERN.pattern}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def add(self, entry: T) -> T:
        """Register ``entry`` under its own ``name``: a class decorator (``@POLICIES.add``) or a call for data
        (``RECIPES.add(Recipe("baseline", ...))``)."""
        return self.register(entry.name, entry)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)
            if self._loader is not None:
                self._loader()

    def get(self, name: str) -> T:
        """Return the entry; an unknown name raises an error listing near matches and all names."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.plural}: {', '.join(sorted(self._entries))}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return list(self)

    def resolve(
        self, spec: str, base: type | None = None, error: type[FastExitError] = UnknownNameError
    ) -> T:
        """A registered name, or an object named by import path (a subclass of ``base`` when given); an import
        path that cannot be loaded raises ``error``."""
        if ":" not in spec:
            return self.get(spec)
        if not IMPORT_PATH.match(spec):
            raise error(
                f"{self.kind} {spec!r} is neither a registered name nor an import path "
                "of the form package.module:ClassName"
            )
        module_name, _, attribute = spec.partition(":")
        try:
            entry = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise error(
                f"cannot load {self.kind} {spec!r}: {exc}; the module must be importable "
                "(installed, or on PYTHONPATH) and define it"
            ) from None
        except Exception as exc:  # the user's module failed while importing: name it, not its stack
            raise error(
                f"cannot load {self.kind} {spec!r}: importing {module_name} raised {type(exc).__name__}: "
                f"{exc}; fix the module"
            ) from exc
        if base is not None and not (isinstance(entry, type) and issubclass(entry, base)):
            raise error(f"{spec!r} is not a subclass of {base.__module__}.{base.__qualname__}")
        return entry
