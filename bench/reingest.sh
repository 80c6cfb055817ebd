#!/bin/bash
# One changed wiki file re-ingested, end to end (issue 10: <= 5 s), against
# nothing changed: four rounds, each "nothing changed" then "one page changed"
# (a sentence appended, then the original put back, alternately), every
# command timed whole by /usr/bin/time.  Needs a writable copy of the shared
# data and an index built from it:
#
#   cp -r ../shared/data /tmp/re/data
#   .venv/bin/podcite ingest /tmp/re/data/wiki /tmp/re/data/transcripts \
#       /tmp/re/data/catalog/transcripts.csv /tmp/re/data/catalog/episodes.csv --index /tmp/m/fp32
#   bench/reingest.sh /tmp/re/data /tmp/m/fp32 /tmp/m/runs
set -eu
DATA=${1:-/tmp/re/data}; INDEX=${2:-/tmp/m/fp32}; OUT=${3:-/tmp/m/runs}
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$OUT"
SRC="$DATA/wiki $DATA/transcripts $DATA/catalog/transcripts.csv $DATA/catalog/episodes.csv"
PAGE=$DATA/wiki/hubermanlab/changes_in_sleep_needs_across_the_lifespan.md
cp "$PAGE" "$OUT/original.md"
trap 'cp "$OUT/original.md" "$PAGE"' EXIT
for i in 1 2 3 4; do
  /usr/bin/time -v .venv/bin/podcite ingest $SRC --index "$INDEX" > "$OUT/same_$i.log" 2>&1
  if [ $((i % 2)) = 1 ]; then
    printf '\n\nA sentence added to measure a re-ingest, round %s.\n' "$i" >> "$PAGE"
  else
    cp "$OUT/original.md" "$PAGE"
  fi
  /usr/bin/time -v .venv/bin/podcite ingest $SRC --index "$INDEX" > "$OUT/one_$i.log" 2>&1
done
for f in "$OUT"/same_*.log "$OUT"/one_*.log; do
  echo "$(basename "$f") $(grep Elapsed "$f" | awk '{print $NF}') $(grep -oE '\([0-9]+ embedded' "$f")) load $(cut -d' ' -f1 /proc/loadavg)"
done
