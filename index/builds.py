"""The builds folder beside an index (``.<name>.builds/``): one writer at a
time, the builds' names, leftovers, pruning and the rollback target.

Part of the store: only index/store/ calls this module, and nothing else
writes in that folder.  What lies there:

    ingest.lock                 held (``flock``) by the one ingest writing; it
                                holds that ingest's pid and start time
    <stamp>-<pid>.partial/      a build being written (or left by a killed one)
    <stamp>-<pid>/              a complete build
    <stamp>-<pid>/published     written once the index pointer named that build

The lock is an ``fcntl.flock`` on the lock file, not the file's existence: the
kernel drops it when its process dies however it dies, so a stale lock of a
killed ingest is taken over without guessing (its pid and time are only for
the message).  Leftovers are recognised by the pid in their name: a build of a
process that is gone (or of this process, which under the lock writes nothing
else) that is not the served build nor the one it would roll back to.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from index.errors import BuildError

LOCK = "ingest.lock"
PUBLISHED = "published"
NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6,})-(?P<pid>\d+)(?P<partial>\.partial)?$")
_held: dict[Path, int] = {}  # lock files this process holds, with their depth


def builds_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.builds"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def new_name() -> str:
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}"


def write_error(folder: Path, exc: OSError, needed: int | None = None) -> BuildError:
    """A disk-full or read-only failure as one line naming the folder (and the space)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        free = shutil.disk_usage(folder).free if folder.exists() else 0
        need = f"; this build needs about {_mb(needed)}" if needed else ""
        return BuildError(f"no space left in {folder} ({_mb(free)} free{need})")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return BuildError(f"cannot write in {folder}: {exc.strerror or exc}")
    return BuildError(f"cannot write in {folder}: {exc}")


def _mb(n: int | None) -> str:
    return f"{(n or 0) / 1e6:.1f} MB"


@contextmanager
def lock(root: Path) -> Iterator[None]:
    """Hold the builds folder's lock (re-entrant within this process)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        key = (root / LOCK).resolve()
        if key in _held:
            _held[key] += 1
            try:
                yield
            finally:
                _held[key] -= 1
            return
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_error(root, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(key)
            raise BuildError(
                f"another ingest is running (pid {holder.get('pid', '?')}, "
                f"since {holder.get('since', '?')}) on {root.parent}; wait for it to finish"
            ) from None
        since = datetime.now(UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": since}).encode(), 0)
        os.fsync(fd)
        _held[key] = 1
        try:
            yield
        finally:
            del _held[key]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing drops the flock


def _read_holder(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def served(out: Path) -> Path | None:
    """The build the index pointer names (resolved), if any."""
    return out.resolve() if out.is_symlink() and out.exists() else None


def _builds(root: Path) -> list[Path]:
    """This folder's builds (complete and partial), oldest first by their stamp."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and NAME.match(p.name)]
    return sorted(found, key=lambda p: p.name)


def _pid(p: Path) -> int:
    m = NAME.match(p.name)
    return int(m["pid"]) if m else 0


def _published(p: Path, legacy: bool) -> bool:
    return (p / PUBLISHED).is_file() or (legacy and not p.name.endswith(".partial"))


def rollback_target(out: Path) -> Path | None:
    """The newest published build other than the served one: what rollback returns to."""
    root = builds_dir(out)
    live = served(out)
    builds = [p for p in _builds(root) if not p.name.endswith(".partial")]
    # Builds written before this layout carry no marker: all of them were published.
    legacy = not any((p / PUBLISHED).is_file() for p in builds)
    cands = [p for p in builds if p.resolve() != live and _published(p, legacy)]
    return cands[-1] if cands else None


def mark_published(build: Path) -> None:
    marker = build / PUBLISHED
    if not marker.exists():
        with marker.open("w") as fh:
            fh.write(datetime.now(UTC).isoformat(timespec="seconds") + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def clean(out: Path) -> list[Path]:
    """Remove leftovers of dead (or this process's earlier) builds: partial
    folders, complete builds never published, pointer temp links.  Never the
    served build or its rollback target.  Call with the lock held."""
    root = builds_dir(out)
    keep = {served(out), rollback_target(out)}
    removed: list[Path] = []
    for p in _builds(root):
        pid = _pid(p)
        if p.resolve() in keep or (pid != os.getpid() and pid_alive(pid)):
            continue
        if p.name.endswith(".partial") or not (p / PUBLISHED).is_file():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    link = re.compile(rf"^\.{re.escape(out.name)}\.link-(\d+)$")
    for p in out.parent.iterdir() if out.parent.is_dir() else ():
        m = link.match(p.name)
        if m and (int(m[1]) == os.getpid() or not pid_alive(int(m[1]))):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def prune(out: Path) -> None:
    """Keep the served build and its rollback target; remove older complete builds."""
    keep = {served(out), rollback_target(out)}
    for p in _builds(builds_dir(out)):
        if p.resolve() in keep or p.name.endswith(".partial"):
            continue
        if (p / PUBLISHED).is_file():
            shutil.rmtree(p, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path``, then its folders."""
    for f in sorted(path.rglob("*")):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for d in sorted((p for p in path.rglob("*") if p.is_dir()), reverse=True):
        fsync_dir(d)
    fsync_dir(path)
