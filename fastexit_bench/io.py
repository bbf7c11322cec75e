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

from fastexit_bench.errors import OutputError, RecordError

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


@contextmanager
def _temporary_sibling(target: Path) -> Iterator[Path]:
    target.parent.mkdir(parents=True, exist_ok=True)
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
    for source in map(Path, inputs):
        if (
            path.exists()
            and source.exists()
            and (path.samefile(source) or path.resolve() in source.resolve().parents)
        ):
            raise OutputError(
                f"{path} is also an input of this command (or holds one); write the output elsewhere"
            )
    if suffix is not None and path.suffix != suffix:
        raise OutputError(f"{path}: this output is a {suffix} file; give a path ending in {suffix}")
    if overwrite and path.is_dir():
        shutil.rmtree(path)
    _refuse_folder(path)
    _check_writable(path.parent)
    return path


def check_output_folder(path: Path, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output folder that exists as a file (removed only when the user passed
    ``overwrite``) or cannot be written."""
    path = Path(path)
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
