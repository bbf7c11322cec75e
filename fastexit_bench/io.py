"""Atomic writers: a crashed run never leaves a half-written file that looks like a result."""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from fastexit_bench.errors import FastExitError, OutputError, RecordError

HOST = socket.gethostname()


def _temp_prefix(target: Path) -> str:
    """Hidden sibling names that say which process owns them (``.NAME.tmp-HOST-PID-``), so a later run can
    tell a killed run's litter from a live writer's work in progress."""
    return f".{target.name}.tmp-{HOST}-{os.getpid()}-"


def remove_litter(target: Path) -> list[Path]:
    """Remove the temporary siblings of ``target`` left by killed processes of this host (a live one's stay)."""
    removed = []
    for entry in Path(target).parent.glob(f".{glob.escape(Path(target).name)}.tmp-{glob.escape(HOST)}-*-*"):
        pid = entry.name.removeprefix(f".{Path(target).name}.tmp-{HOST}-").split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _normal_mode(path: Path) -> None:
    """Give a finished temporary the permissions a new file or folder of the user gets (``mkdtemp`` makes
    0700 folders, safetensors 0600 files)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
FULL_BELOW = 1 << 20
"""A write that fails (torch and safetensors raise their own errors) where less than this is free was a full
disk."""


@contextmanager
def space_checked(target: Path) -> Iterator[None]:
    """Turn a write of ``target`` that failed for want of space into one :class:`OutputError` that says so."""
    try:
        yield
    except FastExitError:
        raise
    except Exception as error:
        free = _free_bytes(target)
        if getattr(error, "errno", None) in OUT_OF_SPACE or (free is not None and free < FULL_BELOW):
            raise OutputError(
                f"no space left on the device writing {target} ({(free or 0) / 2**20:.1f} MB free there); "
                "free some space or write elsewhere"
            ) from None
        raise


def _free_bytes(target: Path) -> int | None:
    for folder in (Path(target), *Path(target).parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


@contextmanager
def _temporary_sibling(target: Path) -> Iterator[Path]:
    """A private folder beside ``target`` holding ``target``'s name, removed at the end with the parent folders
    made for it that stay empty (a failed write leaves nothing behind); a failure for want of space says so."""
    with _parents_made(target.parent), space_checked(target):
        remove_litter(target)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent)) / target.name
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp.parent, ignore_errors=True)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of the file ``target`` and move it into place on success. A folder in its place
    is refused, never replaced: a writer must not delete what it did not create."""
    target = Path(target)
    _refuse_folder(target)
    with _temporary_sibling(target) as tmp:
        yield tmp
        _refuse_folder(target)
        _normal_mode(tmp)
        os.replace(tmp, target)


FILES_KEY = "files"
"""The key of a result's record that lists the result's other files (relative to the record) and their sha256."""


class FileSet:
    """A command's output files published as one result: each file is written into a private staging folder
    beside its own folder, and :meth:`publish` removes the old record, moves the files into place and writes the
    record (listing every file's sha256) last. A run stopped at any point leaves the old result whole, or files
    without a record, which :func:`check_file_set`'s readers refuse; never a mix that reads as a result."""

    def __init__(self, record: Path) -> None:
        self.record = Path(record)
        self._staged: dict[Path, Path] = {}  # real folder -> its staging folder
        self._made: list[Path] = []  # folders made for the staging, removed by discard() while empty

    def folder(self, folder: Path) -> Path:
        """The staging folder whose files (and sub-folders) :meth:`publish` moves into ``folder``."""
        folder = Path(folder)
        if folder not in self._staged:
            self._made += [parent for parent in folder.parents if not parent.exists()]
            folder.parent.mkdir(parents=True, exist_ok=True)
            remove_litter(folder)
            self._staged[folder] = Path(tempfile.mkdtemp(prefix=_temp_prefix(folder), dir=folder.parent))
        return self._staged[folder]

    def path(self, target: Path) -> Path:
        """Where to write the file ``target`` so that it is published with the set."""
        return self.folder(Path(target).parent) / Path(target).name

    def publish(self, record: dict[str, Any]) -> list[Path]:
        """Move every staged file into place and write ``record`` (with the files' hashes) to the record path;
        return the files published, the record last."""
        moves = [
            (staged, folder / staged.relative_to(staging))
            for folder, staging in self._staged.items()
            for staged in sorted(staging.rglob("*"))
            if staged.is_file()
        ]
        for _, target in moves:
            _refuse_folder(target)
        hashes = {
            os.path.relpath(target, self.record.parent): sha256_file(staged) for staged, target in moves
        }
        self.record.unlink(missing_ok=True)  # from here until the new record, readers see no result
        for staged, target in moves:
            target.parent.mkdir(parents=True, exist_ok=True)
            _normal_mode(staged)
            os.replace(staged, target)
        write_json(self.record, {**record, FILES_KEY: hashes})
        return [target for _, target in moves] + [self.record]

    def discard(self) -> None:
        for staging in self._staged.values():
            shutil.rmtree(staging, ignore_errors=True)
        self._staged.clear()
        for folder in sorted(set(self._made), key=lambda f: len(f.parts), reverse=True):
            with suppress(OSError):
                folder.rmdir()


@contextmanager
def file_set(record: Path) -> Iterator[FileSet]:
    """A :class:`FileSet` for the result whose record is ``record``; its staging is removed however the block
    ends, with the folders made for it that stay empty, and a write that fails for want of space says so."""
    files = FileSet(record)
    with space_checked(Path(record).parent):
        try:
            yield files
        finally:
            files.discard()


def check_file_set(record: Path, payload: dict[str, Any], rerun: str) -> None:
    """Refuse a result whose files are not those its record lists (files from another run, edited, or a run
    stopped while publishing). Records from before records listed their files pass."""
    for name, digest in (payload.get(FILES_KEY) or {}).items():
        path = Path(record).parent / name
        if not path.is_file() or sha256_file(path) != digest:
            state = "is missing" if not path.is_file() else "is not the file it lists (changed since)"
            raise RecordError(f"{path} {state} in the result recorded by {record}; rerun `{rerun}`")


def _refuse_folder(target: Path) -> None:
    if target.is_dir():
        raise OutputError(
            f"{target} is a folder; give a file path to write (the folder is left as it is), or "
            "pass --overwrite to replace it"
        )


def check_output_file(
    path: Path, inputs: Iterable[Path] = (), overwrite: bool = False, suffix: str | None = None
) -> Path:
    """Refuse, before any work, an output file not named ``*suffix``, one that is one of the command's
    ``inputs`` or holds one, lies where nothing can be written, or is a folder (removed only when the user
    passed ``overwrite``)."""
    path = Path(path)
    _refuse_inputs(path, inputs)
    if suffix is not None and path.suffix != suffix:
        raise OutputError(f"{path}: this output is a {suffix} file; give a path ending in {suffix}")
    if overwrite and path.is_dir():
        shutil.rmtree(path)
    _refuse_folder(path)
    _check_writable(path.parent)
    return path


def _refuse_inputs(path: Path, inputs: Iterable[Path], inside: bool = False) -> None:
    """Refuse an output that is one of ``inputs``, holds one, or (``inside``: a folder written into) lies in one;
    ``--overwrite`` or not, a run never writes over what it reads."""
    out = path.resolve()
    for source in map(Path, inputs):
        read = source.resolve()
        relation = (
            "is also an input of this command"
            if out == read
            else f"holds {source}, an input of this command"
            if out in read.parents
            else f"lies in {source}, an input of this command"
            if inside and read in out.parents
            else None
        )
        if relation:
            raise OutputError(f"{path} {relation}; write the output elsewhere (--overwrite or not)")


def check_output_folder(path: Path, overwrite: bool = False, inputs: Iterable[Path] = ()) -> Path:
    """Refuse, before any work, an output folder that is, holds or lies in one of the run's ``inputs`` (its
    backbone, resources, data), exists as a file (removed only when the user passed ``overwrite``) or cannot
    be written."""
    path = Path(path)
    _refuse_inputs(path, inputs, inside=True)
    if overwrite and path.is_file():
        path.unlink()
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"{path} is a file; give a folder to write the model into (the file is left as it is), or "
            "pass --overwrite to replace it"
        )
    _check_writable(path)
    return path


def _check_writable(folder: Path) -> None:
    """Refuse a folder that cannot be created or written, without creating it (a failed command leaves no
    empty folders behind)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise OutputError(f"cannot write to {folder} ({error.strerror}); choose a writable place") from None


@contextmanager
def _parents_made(folder: Path) -> Iterator[None]:
    """Create ``folder`` and its missing parents, and remove those of them still empty at the end."""
    made = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for parent in made:  # deepest first
            with suppress(OSError):
                parent.rmdir()


@contextmanager
def exclusive_use(target: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``.NAME.lock`` beside ``target`` (an OS lock, released when the process ends
    however it ends) while ``what`` writes it; a second writer stops at once, naming the first one's PID.
    Folders made for it and left empty are removed, so a command that fails leaves nothing behind."""
    target = Path(target)
    lock = target.with_name(f".{target.name}.lock")
    with _parents_made(target.parent):
        while True:
            handle = open(lock, "a+")  # noqa: SIM115 - held across the yield, closed below
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "unknown"
                handle.close()
                raise OutputError(
                    f"{target} is in use by PID {owner} (another {what}); wait for it to finish or "
                    "write elsewhere"
                ) from None
            if lock.exists() and os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                break  # not a lock file its last owner removed meanwhile
            handle.close()
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield
        finally:
            lock.unlink(missing_ok=True)
            handle.close()


@contextmanager
def cache_entry(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of the directory ``target`` of a content-addressed cache and publish it; if
    another process published the same entry meanwhile, theirs stays (the same content by construction), so
    a reader never meets a moment without it."""
    target = Path(target)
    with _temporary_sibling(target) as tmp:
        yield tmp
        _normal_mode(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise


def write_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(
            json.dumps(payload, indent=2, ensure_ascii=False, default=_plain) + "\n", encoding="utf-8"
        )


def _plain(value: Any) -> Any:
    """JSON for what ``json`` cannot write: a dataclass as its fields, anything else as its text."""
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)


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
