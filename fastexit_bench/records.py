"""Records that cross a process boundary (training record, artefact metadata, sweep record): typed
dataclasses with a format version, written and read through one pair of methods."""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, fields, is_dataclass
from typing import Any, ClassVar, Self

from fastexit_bench.errors import RecordError


def typed(hint: Any, value: Any) -> Any:
    """``value`` read from JSON as ``hint`` says: a dict becomes the dataclass it annotates (keys it does not
    know are dropped), element by element inside lists and dicts, through ``X | None``; other values as
    they are."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return typed(inner[0], value) if len(inner) == 1 else value
    if origin is list and isinstance(value, list):
        return [typed(args[0], item) for item in value]
    if origin is dict and isinstance(value, dict):
        return {key: typed(args[1], item) for key, item in value.items()}
    if isinstance(hint, type) and is_dataclass(hint) and isinstance(value, dict):
        hints = typing.get_type_hints(hint)
        known = {f.name for f in fields(hint) if f.init}
        return hint(**{k: typed(hints[k], v) for k, v in value.items() if k in known})
    return value


class VersionedRecord:
    """Mixin for a dataclass record: ``to_dict`` adds the format version, ``from_dict`` checks it and
    ignores keys this version does not know.

    Class attributes:
        VERSION: the format version this code writes and reads.
        VERSION_KEY: the key that holds it.
        RERUN: the command that writes a record of the current version (for the error message).
    """

    VERSION: ClassVar[int]
    VERSION_KEY: ClassVar[str] = "format_version"
    RERUN: ClassVar[str]

    def __post_init__(self) -> None:
        """Fields annotated with a dataclass hold that dataclass, whether built from JSON or in code."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, typed(hints[f.name], getattr(self, f.name)))

    def to_dict(self) -> dict[str, Any]:
        return {self.VERSION_KEY: self.VERSION, **asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def _version_of(cls, data: dict[str, Any]) -> Any:
        return data.get(cls.VERSION_KEY)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "record") -> Self:
        if not isinstance(data, dict):
            raise RecordError(f"{where} holds a {type(data).__name__}, not a record; rerun `{cls.RERUN}`")
        version = cls._version_of(data)
        if version != cls.VERSION:
            raise RecordError(
                f"{where} has format version {version}, this code reads {cls.VERSION}; rerun `{cls.RERUN}`"
            )
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as error:  # missing keys, or values of the wrong shape
            raise RecordError(f"{where} is not a complete record ({error}); rerun `{cls.RERUN}`") from None
