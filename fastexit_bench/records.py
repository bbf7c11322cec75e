"""Records that cross a process boundary (training record, artefact metadata, sweep record): typed
dataclasses with a format version, written and read through one pair of methods."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Self

from fastexit_bench.errors import RecordError


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

    def to_dict(self) -> dict[str, Any]:
        return {self.VERSION_KEY: self.VERSION, **asdict(self)}

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
