"""One generic registry for every plug-in kind (datasets, backbones, later heads/policies/recipes).

Keys become Snakemake wildcards and path parts, so they are restricted to ``^[a-z][a-z0-9_-]*$``.
Entries live in the modules listed at construction and are imported on first lookup, so listing
or validating names never imports torch.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterator
from typing import Generic, TypeVar

from fastexit_bench.errors import UnknownNameError

T = TypeVar("T")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")


class Registry(Generic[T]):
    """Name -> entry mapping with strict keys, duplicate detection and helpful misses."""

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._modules = modules
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

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(module)

    def get(self, name: str) -> T:
        """Return the entry; an unknown name raises an error listing near matches and all names."""
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            near = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._entries))}"
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
