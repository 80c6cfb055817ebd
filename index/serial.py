"""passages.jsonl rows: a ``Passage`` to a JSON object and back.

Pure serialisation, split out of index/store/ (which reads and writes the
files) so the store stays about the directory.  Fields a newer podcite writes
are ignored when reading.

A line is read with orjson, not json: a search reads about 18 passages from
passages.jsonl, and orjson parses them several times faster (searches about
12% faster at the median; docs/benchmarks.md, "Reading passages").  Lines are
written with json, which writes a float that is not a number as ``NaN``;
orjson refuses that, so such a line is read with json.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

import orjson

from ingest.records import Episode, Passage, Sentence, Time


def passage_from_json(line: bytes | str) -> Passage:
    """A passages.jsonl line back to its ``Passage``."""
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError:
        d = json.loads(line)  # NaN or Infinity, which json writes and reads (or a bad line)
    return passage_from_dict(d)


def passage_to_dict(p: Passage) -> dict[str, Any]:
    return {
        "id": p.id,
        "document_id": p.document_id,
        "document_title": p.document_title,
        "kind": p.kind,
        "channel": p.channel,
        "episode": _fields_dict(p.episode),
        "section": list(p.section),
        "path": p.path,
        "links": list(p.links),
        "anchor": _time_dict(p.anchor),
        "transcribed": p.transcribed,
        "sentences": [
            {
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "time": _time_dict(s.time),
                "end_time": s.end_time,
                "links": list(s.links),
                "line": s.line,
            }
            for s in p.sentences
        ],
    }


def passage_from_dict(d: dict[str, Any]) -> Passage:
    return Passage(
        id=d["id"],
        document_id=d["document_id"],
        document_title=d["document_title"],
        kind=d["kind"],
        channel=d["channel"],
        episode=_episode_from(d["episode"]),
        section=tuple(d["section"]),
        path=d.get("path", ""),
        links=tuple(d["links"]),
        anchor=_time_from(d["anchor"]),
        transcribed=d.get("transcribed"),  # absent in indexes built before feeds
        sentences=tuple(
            Sentence(
                start=s["start"],
                end=s["end"],
                text=s["text"],
                time=_time_from(s["time"]),
                end_time=s.get("end_time"),
                links=tuple(s.get("links", ())),
                line=s.get("line", 0),
            )
            for s in d["sentences"]
        ),
    )


def _fields_dict(record: Any) -> dict[str, Any] | None:
    if record is None:
        return None
    return {f.name: getattr(record, f.name) for f in fields(record)}


_EPISODE_FIELDS = frozenset(f.name for f in fields(Episode))


def _episode_from(d: dict[str, Any] | None) -> Episode | None:
    if d is None:
        return None
    known = _EPISODE_FIELDS  # fields of a newer podcite are ignored
    return Episode(**{k: v for k, v in d.items() if k in known})


def _time_dict(t: Time | None) -> dict[str, Any] | None:
    if t is None:
        return None
    d: dict[str, Any] = {"seconds": t.seconds, "exact": t.exact}
    if t.verified is not None:
        d["verified"] = t.verified
        d["said_at"] = t.said_at
    return d


def _time_from(d: dict[str, Any] | None) -> Time | None:
    if d is None:
        return None
    return Time(d["seconds"], d["exact"], d.get("verified"), d.get("said_at"))
