"""Keyword (BM25) index over the same passages as the vectors.

STUB: to be implemented with bm25s (see issue 4).  The hooks in build.py and
store.py call these two functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.records import Passage

DIRNAME = "bm25"


def write_keyword_index(directory: Path, passages: list[Passage]) -> None:
    """Write the keyword index for ``passages`` (in index row order) into ``directory``."""


def load_keyword_index(directory: Path) -> Any:
    """Load what write_keyword_index wrote; None when absent."""
    return None
