"""Downloads for feeds: a cache folder keyed by URL and by content hash.

``Downloads.fetch(url)`` gives a local file for any URL a feed names:

- ``file://`` URLs and plain paths are read where they lie (never copied: a
  local audio file may be gigabytes), hashed, and reported the same way;
- ``http(s)://`` content is downloaded once into ``blobs/<sha256><suffix>``,
  with a record ``urls/<sha1 of URL>.json`` (URL, hash, size, ETag,
  Last-Modified).  A download cut off is resumed from its ``partial/`` file
  with an HTTP range request (``If-Range`` guards against a changed file).
  Audio, transcripts and chapters are taken as immutable under their URL (a
  re-read touches nothing it has); a feed is revalidated with a conditional
  GET, and where the network is down its cached copy is used, said so.

An unreachable or missing URL is a ``FetchError`` of one line naming the URL.
Written on the standard library's urllib rather than requests or httpx: it
does range and conditional requests and ``file://`` in one place, and podcite
then needs no HTTP client of its own (feedparser, which reads the bytes, uses
urllib too).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ingest.errors import FetchError

USER_AGENT = "podcite/0.1 (podcast feed reader; +https://github.com/podcite)"
CHUNK = 1 << 20
TIMEOUT_S = 30.0

# (url, bytes done, bytes in all when known)
DownloadProgress = Callable[[str, int, int | None], None]


def to_url(source: str, base: str | None = None) -> str:
    """A URL for what a feed or the user names: a URL stays one, a relative
    reference is resolved against ``base`` (the feed's own URL), a local path
    becomes a ``file://`` URL."""
    if "://" in source:
        return source
    if base is not None:
        return urljoin(base, source)
    return Path(source).expanduser().resolve().as_uri()


def is_local(url: str) -> bool:
    return urlsplit(url).scheme in ("file", "")


def local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme not in ("file", ""):
        raise ValueError(f"not a file URL: {url}")
    return Path(unquote(parts.path))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str
    path: Path  # the content, on this disk
    sha256: str
    size: int
    content_type: str | None = None
    local: bool = False  # a file of the user's, read in place
    downloaded: bool = False  # bytes came over the network this time
    stale: str | None = None  # the network failed and the cached copy was used: why


class Downloads:
    """The download cache under ``root`` (see the module docstring)."""

    def __init__(
        self, root: Path, progress: DownloadProgress | None = None, timeout: float = TIMEOUT_S
    ) -> None:
        self.root = Path(root)
        self.progress = progress
        self.timeout = timeout

    # -- the cache's files ------------------------------------------------------------

    def _key(self, url: str) -> str:
        return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:24]

    def _record_path(self, url: str) -> Path:
        return self.root / "urls" / f"{self._key(url)}.json"

    def record(self, url: str) -> dict[str, Any] | None:
        """What the cache knows of ``url`` (its content hash even after the blob is gone)."""
        try:
            data: dict[str, Any] = json.loads(self._record_path(url).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if data.get("url") == url else None

    def _blob(self, record: dict[str, Any]) -> Path:
        return self.root / "blobs" / f"{record['sha256']}{record.get('suffix', '')}"

    def forget_content(self, url: str) -> None:
        """Delete a download's bytes but keep its record (hash, size): audio once
        transcribed is not needed again, and the record still finds its transcript."""
        rec = self.record(url)
        if rec is not None and not is_local(url):
            self._blob(rec).unlink(missing_ok=True)

    # -- fetching ---------------------------------------------------------------------

    def fetch(self, url: str, *, revalidate: bool = False) -> Fetched:
        """The content of ``url`` as a local file.  ``revalidate``: ask the server
        whether a cached copy is still current (feeds), else a cached copy is used."""
        scheme = urlsplit(url).scheme
        if scheme in ("file", ""):
            return self._local(url)
        if scheme not in ("http", "https"):
            raise FetchError(url, f"cannot download {scheme}:// URLs (http, https, file only)")
        rec = self.record(url)
        cached = rec is not None and self._blob(rec).is_file()
        if cached and not revalidate:
            assert rec is not None
            return self._from_record(rec)
        try:
            return self._download(url, rec if cached else None)
        except FetchError as exc:
            if cached and rec is not None:  # offline: the copy we have is better than nothing
                return self._from_record(rec, stale=str(exc).removeprefix(f"{url}: "))
            raise

    def _local(self, url: str) -> Fetched:
        path = local_path(url)
        if not path.is_file():
            raise FetchError(url, "no such file" if not path.exists() else "not a file")
        try:
            return Fetched(url, path, sha256_of(path), path.stat().st_size, local=True)
        except OSError as exc:
            raise FetchError(url, f"cannot read: {exc.strerror or exc}") from exc

    def _from_record(self, rec: dict[str, Any], stale: str | None = None) -> Fetched:
        return Fetched(
            rec["url"],
            self._blob(rec),
            rec["sha256"],
            int(rec["size"]),
            rec.get("content_type"),
            stale=stale,
        )

    def _download(self, url: str, cached: dict[str, Any] | None) -> Fetched:
        key = self._key(url)
        part = self.root / "partial" / f"{key}.part"
        part_meta = part.with_suffix(".json")
        part.parent.mkdir(parents=True, exist_ok=True)
        headers = {"User-Agent": USER_AGENT}
        if cached is not None:  # a conditional GET: 304 means the cached copy holds
            if cached.get("etag"):
                headers["If-None-Match"] = cached["etag"]
            if cached.get("last_modified"):
                headers["If-Modified-Since"] = cached["last_modified"]
        have = part.stat().st_size if part.is_file() else 0
        validator = _read_json(part_meta).get("validator") if have else None
        if have and validator:  # resume; If-Range restarts it should the file have changed
            headers["Range"] = f"bytes={have}-"
            headers["If-Range"] = validator
        else:
            have = 0
        request = urllib.request.Request(url, headers=headers)
        try:
            # Only http(s) reach here: fetch() refuses other schemes first.
            response = urllib.request.urlopen(request, timeout=self.timeout)  # nosec B310
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and cached is not None:
                return self._from_record(cached)
            if exc.code == 416 and have:  # our partial file is already whole, or bogus
                part.unlink(missing_ok=True)
                return self._download(url, cached)
            raise FetchError(url, f"HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FetchError(url, f"cannot download: {_reason(exc)}") from None
        with response:
            resumed = have > 0 and response.status == 206
            if not resumed:
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            part_meta.write_text(json.dumps({"url": url, "validator": validator}), "utf-8")
            done = have
            try:
                with part.open("ab" if resumed else "wb") as fh:
                    while block := response.read(CHUNK):
                        fh.write(block)
                        done += len(block)
                        if self.progress:
                            self.progress(url, done, total)
            except (OSError, urllib.error.URLError) as exc:
                raise FetchError(
                    url, f"download cut off at {done:,} bytes ({_reason(exc)}); run again to resume"
                ) from None
            if total is not None and done < total:
                raise FetchError(
                    url, f"download cut off at {done:,} of {total:,} bytes; run again to resume"
                )
            content_type = response.headers.get_content_type()
            return self._store(url, part, response.headers, content_type)

    def _store(self, url: str, part: Path, headers: Any, content_type: str | None) -> Fetched:
        sha = sha256_of(part)
        rec = {
            "url": url,
            "sha256": sha,
            "size": part.stat().st_size,
            "suffix": _suffix(url),
            "content_type": content_type,
            "etag": headers.get("ETag"),
            "last_modified": headers.get("Last-Modified"),
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        blob = self._blob(rec)
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, blob)
        part.with_suffix(".json").unlink(missing_ok=True)
        _write_json(self._record_path(url), rec)
        return Fetched(url, blob, sha, int(rec["size"]), content_type, downloaded=True)


def copy_into(src: Path, dst: Path) -> None:
    """Write ``dst`` whole or not at all (a reader never sees half a file)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _suffix(url: str) -> str:
    """The URL path's extension (``.mp3``), which the decoders and parsers go by."""
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
    return suffix if 1 < len(suffix) <= 8 and suffix[1:].isalnum() else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
        if isinstance(exc, urllib.error.URLError):
            return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)
