"""A case's modality when its file does not say it: predicted from the encoder's embedding by the model's head.

DICOM files carry their modality (CT, MR, US, XR, ES, ...); PNG/JPEG/TIFF, videos and NIfTI do not (their readers
say ``OT``). An M3Ret model file may carry a *modality head* in its metadata (``engine.model_format
.META_MODALITY_HEAD``): a multinomial logistic regression on the L2-normalised embedding, fitted by the trainer
(``m3ret-train fit-modality``) on the train split's manifest ``modality`` column, so it follows every new model.

Rules (applied by the indexer and by a search's query):

- a modality read from the file (a DICOM tag) or given by the user (``--modality``) always wins;
- otherwise the head predicts ``(modality, confidence)``; the prediction and its confidence are stored in the
  catalog, and the case takes the predicted modality only when ``confidence >= head.min_confidence``; a less
  confident prediction leaves it ``OT``;
- a model without a head changes nothing (cases stay ``OT``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.model_format import META_MODALITY_HEAD

log = logging.getLogger(__name__)

UNKNOWN_MODALITIES = ("", "OT")
DEFAULT_MIN_CONFIDENCE = 0.8
HEAD_FORMAT = 1

# Manifest modality names (``trainer.manifest`` ``modality`` column) -> the DICOM codes the catalog stores.
MANIFEST_TO_CODE = {"ct": "CT", "mri": "MR", "mr": "MR", "xray": "XR", "x-ray": "XR", "ultrasound": "US",
                    "us": "US", "endoscopy": "ES", "mammography": "MG", "pet": "PT", "nuclear": "NM"}


def modality_code(name: str) -> str | None:
    """The catalog's modality code for a manifest modality name ("xray" -> "XR"); None when unknown."""
    key = name.strip().lower()
    if key in MANIFEST_TO_CODE:
        return MANIFEST_TO_CODE[key]
    return key.upper() if 1 < len(key) <= 2 and key.isalpha() else None


@dataclass(frozen=True)
class ModalityHead:
    """``p = softmax(weights @ z + bias)`` over ``classes`` for an L2-normalised embedding ``z``."""

    classes: tuple[str, ...]  # DICOM-style codes, e.g. ("CT", "ES", "MR", "US", "XR")
    weights: np.ndarray  # float32 C D
    bias: np.ndarray  # float32 C
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    info: Mapping[str, Any] | None = None  # how it was fitted: data, per-modality test accuracy

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.classes) or self.bias.shape != (len(self.classes),):
            raise ValueError(f"modality head: weights {self.weights.shape} / bias {self.bias.shape} do not match "
                             f"{len(self.classes)} classes")

    @property
    def embed_dim(self) -> int:
        return int(self.weights.shape[1])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """``N D`` embeddings -> ``N C`` class probabilities."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))  # N D
        if vectors.shape[1] != self.embed_dim:
            raise ValueError(f"modality head expects {self.embed_dim}-d embeddings, got {vectors.shape[1]}-d")
        logits = vectors @ self.weights.T + self.bias  # N C
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray) -> list[tuple[str, float]]:
        """``N D`` embeddings -> ``(modality, confidence)`` per row (the most probable class)."""
        probs = self.probabilities(vectors)  # N C
        best = probs.argmax(axis=1)
        return [(self.classes[int(c)], float(probs[i, c])) for i, c in enumerate(best)]

    def to_json(self) -> str:
        return json.dumps({
            "format": HEAD_FORMAT, "type": "softmax-linear", "classes": list(self.classes),
            "weights": np.round(self.weights.astype(np.float64), 6).tolist(),
            "bias": np.round(self.bias.astype(np.float64), 6).tolist(),
            "min_confidence": self.min_confidence, "info": dict(self.info or {}),
        }, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModalityHead":
        doc = json.loads(text)
        if doc.get("format") != HEAD_FORMAT or doc.get("type") != "softmax-linear":
            raise ValueError(f"unsupported modality head (format {doc.get('format')!r}, type {doc.get('type')!r})")
        return cls(tuple(doc["classes"]), np.asarray(doc["weights"], np.float32), np.asarray(doc["bias"], np.float32),
                   float(doc.get("min_confidence", DEFAULT_MIN_CONFIDENCE)), doc.get("info") or {})


def head_from_metadata(meta: Mapping[str, str], source: str = "model") -> ModalityHead | None:
    """The head stored in a model's metadata; None (logged) when it has none or it cannot be used."""
    text = meta.get(META_MODALITY_HEAD)
    if not text:
        return None
    try:
        return ModalityHead.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("%s: modality head ignored (%s)", source, exc)
        return None


@dataclass(frozen=True)
class ModalityPrediction:
    """What the head said about one case, and the modality the case takes."""

    predicted: str
    confidence: float
    modality: str  # ``predicted`` when confident enough, else "OT"


def resolve(head: ModalityHead | None, current: str, vector: np.ndarray) -> ModalityPrediction | None:
    """Prediction for a case whose modality is ``current``; None when the file already says it or no head."""
    if head is None or (current or "") not in UNKNOWN_MODALITIES:
        return None
    ((predicted, confidence),) = head.predict(vector[None] if vector.ndim == 1 else vector)
    modality = predicted if confidence >= head.min_confidence else "OT"
    return ModalityPrediction(predicted, confidence, modality)


def resolve_many(head: ModalityHead | None, modalities: Sequence[str], vectors: np.ndarray
                 ) -> list[ModalityPrediction | None]:
    """``resolve`` for ``N`` cases at once (``vectors`` ``N D``)."""
    out: list[ModalityPrediction | None] = [None] * len(modalities)
    todo = [i for i, m in enumerate(modalities) if (m or "") in UNKNOWN_MODALITIES]
    if head is None or not todo:
        return out
    for i, (predicted, confidence) in zip(todo, head.predict(vectors[todo])):
        out[i] = ModalityPrediction(predicted, confidence,
                                    predicted if confidence >= head.min_confidence else "OT")
    return out


def apply_predictions(head: ModalityHead | None, cases: Sequence[Any], vectors: np.ndarray) -> int:
    """Predict the modality of those ``cases`` (``NewCase``-like: ``modality``, ``predicted_modality``,
    ``modality_confidence``) whose files did not say it, from their ``N D`` embeddings; returns how many got one."""
    n_confident = 0
    for case, prediction in zip(cases, resolve_many(head, [c.modality for c in cases], vectors)):
        if prediction is not None:
            case.modality = prediction.modality
            case.predicted_modality, case.modality_confidence = prediction.predicted, prediction.confidence
            n_confident += prediction.modality == prediction.predicted
    return n_confident


def describe(modality: str, predicted: str | None, confidence: float | None) -> str:
    """How a case's modality is shown: "XR", "XR, predicted 0.97", or "OT (XR? 0.41)" when not confident."""
    if predicted is None or confidence is None:
        return modality or "OT"
    if modality == predicted:
        return f"{modality}, predicted {confidence:.2f}"
    return f"{modality or 'OT'} ({predicted}? {confidence:.2f})"
