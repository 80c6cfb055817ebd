"""Loading Hugging Face models the way podcite does: offline, and quietly.

Both model paths need this, the torch embedder (index/embedder.py) and the ONNX
export (index/onnx_model.py), and the embedder also drives the export: the
two helpers live here so neither of those modules imports the other back.
"""

from __future__ import annotations

import os


def offline() -> None:
    """Nothing is downloaded: the models load from site-packages or a local
    directory (``HF_HUB_OFFLINE``), and tokenizers spawn no threads of their own."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_loading() -> None:
    """No "Loading weights 0/103" bar from transformers: it would sit among
    podcite's own stages (and in logs), for a load of well under a second.
    Called where transformers loads a model: the torch embedder and the onnx
    export."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # unannotated there
