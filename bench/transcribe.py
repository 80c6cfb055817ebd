"""Local transcription, measured: speed (real-time factor) and cited-moment error.

Makes a synthetic episode of about ``--minutes`` minutes: espeak-ng says
generated sentences (distinct by construction) and sox joins them with
silences of 0.6-2.5 s (seeded), so every sentence's start is known to the
millisecond (tests/speech.py).  Then:

- transcribes it with the default model (or ``--model DIR``), timing the
  model alone (the audio's decoding included, its loading not): real-time
  factor = audio seconds / wall seconds;
- alignment error: each spoken sentence is found again in the transcript (the
  transcript sentence sharing most words with it, within 15 s) and its time
  compared with the known start;
- cited-moment error: the transcript is indexed with the real embedder and
  every ``--every``-th sentence is asked as a question; the first result's
  cited moment is compared with the sentence's start (a result that cites
  another sentence is counted as a retrieval miss, not as a time error).

    .venv/bin/python bench/transcribe.py --minutes 20 [--beam 5] [--model DIR]

Builds in /tmp/podcite-bench-transcribe, one cache per episode, beam, model
and prompt (kept: a rerun transcribes again only with --fresh).
"""

from __future__ import annotations

import argparse
import math
import random
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index import SentenceTransformerEmbedder, build, open_index, search  # noqa: E402
from ingest import load  # noqa: E402
from ingest.audio import Transcriber  # noqa: E402
from ingest.podcast import Media  # noqa: E402
from ingest.records import Sentence  # noqa: E402
from tests.speech import Spoken, speak_episode  # noqa: E402

OUT = Path("/tmp/podcite-bench-transcribe")

NAMES = ["Maria", "Tomas", "Aisha", "Kenji", "Olga", "Pedro", "Fatima", "Lars", "Nadia", "Hugo"]
PLACES = ["Lisbon", "Nairobi", "Oslo", "Kyoto", "Lima", "Dublin", "Cairo", "Quebec", "Perth"]
THINGS = [
    "greenhouse",
    "bakery",
    "lighthouse",
    "orchard",
    "library",
    "bridge",
    "vineyard",
    "observatory",
    "harbour",
    "workshop",
    "museum",
    "garden",
]
ANIMALS = ["goats", "bees", "horses", "ducks", "sheep", "rabbits", "pigeons", "alpacas"]
VERBS = ["repaired", "painted", "measured", "visited", "cleaned", "photographed", "mapped"]
ADJECTIVES = ["old", "quiet", "crowded", "narrow", "famous", "windy", "tiny", "busy"]
FOODS = ["bread", "cheese", "soup", "honey", "olives", "rice", "apples", "coffee"]


def sentences(n: int, seed: int = 11) -> list[str]:
    """``n`` distinct, plain English sentences of 8 to 16 words."""
    rng = random.Random(seed)
    templates = [
        "{name} keeps {k} {animal} on a farm just outside {place}.",
        "The {adj} {thing} in {place} was built in {year}.",
        "Last spring {name} {verb} the {adj} {thing} near {place}.",
        "In {place} people eat {food} with almost every meal.",
        "{name} says the {thing} opens at {hour} in the morning.",
        "It took {k} days to walk from {place} to {place2}.",
        "Our guest from {place} brought {k} jars of {food} for the team.",
        "The {thing} in {place} needs {k} new windows before winter.",
        "Every {day}, {name} rides a bicycle to the {thing} to feed the {animal}.",
        "A storm in {year} flooded the {adj} streets of {place} for {k} weeks.",
        "{name} learned to bake {food} from a neighbour who grew up in {place2}.",
        "The choir from {place} sang {k} songs under the {adj} bridge.",
        "Scientists counted {k} hundred {animal} on the island last {day}.",
        "{name} lost a silver ring while swimming in the lake near {place}.",
        "The train to {place} leaves at {hour} and arrives after lunch.",
        "A painter from {place} sold {k} portraits of {animal} at the fair.",
    ]
    out: list[str] = []
    seen: set[str] = set()
    recent: list[str] = []  # neighbours never share a template: each is told apart
    while len(out) < n:
        template = rng.choice([t for t in templates if t not in recent])
        text = template.format(
            name=rng.choice(NAMES),
            place=rng.choice(PLACES),
            place2=rng.choice(PLACES),
            thing=rng.choice(THINGS),
            animal=rng.choice(ANIMALS),
            verb=rng.choice(VERBS),
            adj=rng.choice(ADJECTIVES),
            food=rng.choice(FOODS),
            year=rng.randint(1850, 2015),
            hour=rng.choice(["six", "seven", "eight", "nine", "ten"]),
            day=rng.choice(["Monday", "Tuesday", "Friday", "Sunday", "summer", "winter"]),
            k=rng.choice(["two", "three", "four", "five", "six", "seven", "eight", "twelve"]),
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
            recent = [*recent, template][-5:]
    return out


def episode(minutes: float, seed: int) -> Spoken:
    n = int(minutes * 60 / 4.6)  # ~3.1 s of speech and ~1.5 s of silence each
    rng = random.Random(seed)
    gaps = [round(rng.uniform(0.6, 2.5), 2) for _ in range(n)]
    path = OUT / f"episode-{minutes:g}min-{seed}.mp3"
    return speak_episode(sentences(n, seed), path, gaps=gaps)  # the same bytes every time


_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--every", type=int, default=5, help="ask every n-th sentence")
    ap.add_argument("--fresh", action="store_true", help="transcribe even if cached")
    ap.add_argument("--verbose", action="store_true", help="print the misses")
    ap.add_argument("--prompt", default=None, help="an initial prompt (compared; none is used)")
    args = ap.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spoken = episode(args.minutes, args.seed)
    print(
        f"episode: {len(spoken.sentences)} sentences, {spoken.seconds / 60:.1f} min "
        f"(made in {time.perf_counter() - t0:.0f} s)"
    )
    model = args.model.name if args.model else "tiny.en"
    prompt = "-prompt" if args.prompt else ""
    cache = OUT / f"cache-{args.minutes:g}min-{args.seed}-beam{args.beam}-{model}{prompt}"
    if args.fresh:
        shutil.rmtree(cache, ignore_errors=True)
    transcriber = Transcriber(args.model, beam_size=args.beam)
    transcriber.prompt = args.prompt
    media = Media(cache_dir=cache, transcriber=transcriber)
    cpu0 = time.process_time()  # every thread of this process: CTranslate2's too
    loaded = load([spoken.path], media=media)
    cpu = time.process_time() - cpu0
    if loaded.errors:
        raise SystemExit(f"failed: {loaded.errors[0]}")
    (t,) = media.transcripts
    print(
        f"model {t.model}, beam {args.beam}, {transcriber.threads} threads: "
        f"{t.audio_seconds:.0f} s of audio in {t.wall_seconds:.1f} s = {t.speed:.1f}x real time"
        f"{' (from the cache)' if t.cached else ''}"
    )
    print(f"  a 2-hour episode at this rate: {7200 / t.speed / 60:.1f} min")
    if not t.cached:
        # What the load of other jobs cannot change: CPU seconds spent (model
        # loading and decoding included).  On two otherwise idle cores the wall
        # time is at least half of it.
        idle = t.audio_seconds / (cpu / transcriber.threads)
        print(
            f"  CPU: {cpu:.0f} s ({cpu / t.audio_seconds:.3f} CPU s per audio s); on "
            f"{transcriber.threads} idle cores at best {idle:.1f}x real time, a 2-hour "
            f"episode in {7200 / idle / 60:.1f} min"
        )

    (doc,) = loaded.documents
    said = doc.sentences
    errors: list[float] = []
    spoken_of: dict[int, int] = {}  # transcript sentence (its offset) -> spoken sentence
    lost = 0
    heard = said_words = 0  # spoken words found again in their transcript sentence
    for n, (text, start) in enumerate(zip(spoken.sentences, spoken.starts, strict=True)):
        near = [s for s in said if s.time and abs(s.time.seconds - start) < 15]

        def score(s: Sentence, text: str = text, start: float = start) -> tuple[int, float]:
            assert s.time is not None  # most words in common, then nearest
            return len(words(s.text) & words(text)), -abs(s.time.seconds - start)

        best = max(near, key=score, default=None)
        said_words += len(words(text))
        heard += len(words(best.text) & words(text)) if best is not None else 0
        if best is None or len(words(best.text) & words(text)) < len(words(text)) / 2:
            lost += 1
            continue
        assert best.time is not None
        errors.append(best.time.seconds - start)
        spoken_of.setdefault(best.start, n)
        if args.verbose and abs(errors[-1]) > 1.0:
            print(f"  off by {errors[-1]:+.2f} s: {text!r} at {start:.1f} s -> {best.text!r}")
    absolute = sorted(abs(e) for e in errors)
    print(
        f"alignment: {len(errors)} of {len(spoken.sentences)} sentences found "
        f"({lost} not recognisably transcribed); "
        f"|error| median {statistics.median(absolute):.2f} s, "
        f"p90 {absolute[math.ceil(0.9 * len(absolute)) - 1]:.2f} s, worst {absolute[-1]:.2f} s; "
        f"signed median {statistics.median(errors):+.2f} s; "
        f"{heard / said_words:.1%} of the spoken words heard"
    )

    embedder = SentenceTransformerEmbedder()
    index_dir = cache / "index"
    build(loaded.documents, index_dir, embedder)
    idx = open_index(index_dir, embedder)
    cited: list[float] = []  # the asked sentence cited: its time against its start
    moment: list[float] = []  # whatever sentence is cited: its time against that one's start
    misses = 0
    asked = list(enumerate(zip(spoken.sentences, spoken.starts, strict=True)))[:: args.every]
    for n, (text, start) in asked:
        hit = search(idx, text, k=1)[0]
        when = hit.time
        said = spoken_of.get(hit.sentence.start)
        if when is not None and said is not None:
            moment.append(abs(when.seconds - spoken.starts[said]))
        if when is None or said != n:
            misses += 1
            if args.verbose:
                print(f"  miss: {text!r} at {start:.1f} s -> {hit.sentence.text!r} at {when}")
            continue
        cited.append(abs(when.seconds - start))
    cited.sort()
    moment.sort()
    print(
        f"cited moment: {len(asked)} questions, {misses} cite another sentence; "
        f"|error| median {statistics.median(cited):.2f} s, worst {cited[-1]:.2f} s, "
        f"within 1.5 s: {sum(c <= 1.5 for c in cited)}/{len(cited)}"
    )
    print(
        f"  every cited sentence against its own start: {len(moment)} citations, |error| "
        f"median {statistics.median(moment):.2f} s, worst {moment[-1]:.2f} s, "
        f"within 1.5 s: {sum(c <= 1.5 for c in moment)}/{len(moment)}"
    )


if __name__ == "__main__":
    main()
