"""Atomic writers: a crashed run never leaves a half-written file that looks like a result."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastexit_bench.errors import OutputError, RecordError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of the file ``target`` and move it into place on success. A folder in its place
    is refused, never replaced: a writer must not delete what it did not create."""
    target = Path(target)
    _refuse_folder(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        _refuse_folder(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def _refuse_folder(target: Path) -> None:
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file path to write (the folder is left as it is)")


def check_output_file(path: Path, inputs: Iterable[Path] = ()) -> Path:
    """Refuse, before any work, an output file that is a folder, is one of the command's ``inputs``, or lies
    where nothing can be written."""
    path = Path(path)
    _refuse_folder(path)
    for source in inputs:
        if Path(source).exists() and path.exists() and path.samefile(source):
            raise OutputError(f"{path} is also an input of this command; write the output elsewhere")
    _check_writable(path.parent)
    return path


def check_output_folder(path: Path) -> Path:
    """Refuse, before any work, an output folder that exists as a file or cannot be written (created if
    missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; give a folder to write the model into (the file is left as it is)")
    _check_writable(path)
    return path


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise OutputError(f"cannot write to {folder} ({error.strerror}); choose a writable place") from None


@contextmanager
def cache_entry(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of the directory ``target`` of a content-addressed cache and publish it; if
    another process published the same entry meanwhile, theirs stays (the same content by construction), so
    a reader never meets a moment without it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a file that is not JSON is a :class:`RecordError` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordError(f"{path} is not a JSON record ({error}); rerun the command that wrote it") from None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
