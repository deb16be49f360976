"""Fit the modality head of an exported M3Ret model and store it in the model file (``m3ret-train fit-modality``).

The head (``engine.modality.ModalityHead``) is a multinomial logistic regression on the model's own L2-normalised
embeddings, so it follows every new model. Data: a manifest's ``train`` split, at most ``per_class`` rows per
modality (a seeded sample: class-balanced and cheap to embed), read through the clip cache
(``trainer.clip_cache``, the inference path) and embedded by the ONNX model itself with ONNX Runtime (exactly what
the indexer will see). MRI rows of the train split are used here: a modality is not a diagnosis, and the head must
know what an MRI looks like. The per-modality accuracy on the ``test`` split is measured and stored with the head.

The head is written into the model's metadata (``engine.model_format.META_MODALITY_HEAD``) and into its int8 copy
(``<stem>.int8.onnx`` next to it, when that holds the same model id); weights and model id are unchanged, so
libraries built with the model stay valid.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from engine import model_format as mf
from engine.encoder import Encoder
from engine.modality import DEFAULT_MIN_CONFIDENCE, ModalityHead, modality_code
from trainer.clip_cache import ClipSet, build_clip_set
from trainer.manifest import ManifestRow, load_manifest

log = logging.getLogger(__name__)

PER_CLASS = 300  # train rows per modality (more adds little to a linear head on 100s of dimensions)
L2 = 1e-3  # weight decay of the logistic regression (per sample)
EMBED_CHUNK = 32  # clips per embedding call


@dataclass
class HeadReport:
    """What ``fit_modality_head`` did: the head, train counts, per-modality test accuracy."""

    head: ModalityHead
    train_counts: dict[str, int]
    test_accuracy: dict[str, float]  # modality -> fraction of test cases predicted right (+ "all")
    test_counts: dict[str, int]
    confident_fraction: dict[str, float]  # modality -> fraction of test cases at or above min_confidence
    written: list[str]

    def table(self) -> str:
        """Per-modality test accuracy as a text table."""
        lines = [f"{'modality':<8} {'train':>6} {'test':>6} {'accuracy':>9} {'confident':>10}"]
        rows = [(code, self.train_counts.get(code, 0), n) for code, n in sorted(self.test_counts.items())]
        rows.append(("all", sum(self.train_counts.values()), sum(self.test_counts.values())))
        for code, n_train, n_test in rows:
            if code in self.test_accuracy:
                lines.append(f"{code:<8} {n_train:>6} {n_test:>6} {self.test_accuracy[code]:>9.3f} "
                             f"{self.confident_fraction[code]:>10.3f}")
        return "\n".join(lines)


def per_class_indices(rows: Sequence[ManifestRow], per_class: int | None, seed: int = 0) -> list[int]:
    """Indices of at most ``per_class`` rows per known modality (seeded sample, None = all), in row order; rows of
    an unknown manifest modality are left out (logged)."""
    by_code: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        code = modality_code(row.modality)
        if code is None:
            log.warning("%s: unknown manifest modality %r, row not used", row.path, row.modality)
            continue
        by_code[code].append(i)
    rng = random.Random(seed)
    keep: list[int] = []
    for _code, indices in sorted(by_code.items()):
        keep += indices if per_class is None or len(indices) <= per_class else rng.sample(indices, per_class)
    return sorted(keep)


def sample_rows(rows: Sequence[ManifestRow], per_class: int, seed: int = 0) -> list[ManifestRow]:
    """At most ``per_class`` rows per known modality (seeded sample, manifest order kept)."""
    return [rows[i] for i in per_class_indices(rows, per_class, seed)]


def cap_per_class(clip_set: ClipSet, per_class: int | None, seed: int = 0) -> ClipSet:
    """At most ``per_class`` clips per known modality (seeded sample; None = all), unknown modalities left out."""
    return clip_set.subset(per_class_indices(clip_set.rows, per_class, seed))


def embed_clip_set(encoder: Encoder, clip_set: ClipSet) -> np.ndarray:
    """Every clip of ``clip_set`` embedded by ``encoder`` -> float32 ``N D``."""
    out = np.zeros((len(clip_set), encoder.embed_dim), np.float32)  # N D
    for length, indices in clip_set.indices_by_length().items():
        for start in range(0, len(indices), EMBED_CHUNK):
            chunk = indices[start:start + EMBED_CHUNK]
            out[chunk] = encoder.embed_clips(list(clip_set.batch(chunk)))
    return out


def fit_softmax(vectors: np.ndarray, labels: np.ndarray, n_classes: int, l2: float = L2,
                steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression (L-BFGS): ``N D`` vectors, ``N`` labels -> ``C D``, ``C``.

    One encoder's embeddings crowd around one direction (cosines 0.9+), so the features are standardised
    (per-dimension mean and spread of the training vectors) for the fit, and the standardisation is folded into
    the returned weights and bias: the head still takes the raw embedding."""
    raw = np.asarray(vectors, np.float64)  # N D
    mean, spread = raw.mean(axis=0), raw.std(axis=0) + 1e-6  # D, D
    x = torch.from_numpy(((raw - mean) / spread).astype(np.float32))  # N D standardised
    y = torch.from_numpy(np.asarray(labels, np.int64))  # N
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).float()
    class_weight = counts.sum() / (n_classes * counts)  # C: rare modalities count as much as common ones
    weight = torch.zeros(n_classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(n_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight.T + bias, y, weight=class_weight)
        loss = loss + l2 * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    w = weight.detach().numpy().astype(np.float64) / spread  # C D, on raw embeddings
    b = bias.detach().numpy().astype(np.float64) - w @ mean  # C
    return w.astype(np.float32), b.astype(np.float32)


def fit_modality_head(
    model: str | Path,
    manifest: str | Path,
    *,
    per_class: int = PER_CLASS,
    test_per_class: int | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    cache_dir: str | Path | None = None,
    workers: int = 2,
    write: bool = True,
    seed: int = 0,
) -> HeadReport:
    """Fit the head on the manifest's train split, measure it on its test split (at most ``test_per_class`` rows per
    modality; None = all), store it in the model file(s)."""
    model = Path(model)
    encoder = Encoder(model)
    train_rows = sample_rows(load_manifest(manifest, "train"), per_class, seed)
    if not train_rows:
        raise ValueError(f"{manifest}: no train rows with a known modality")
    train = build_clip_set(train_rows, encoder.params, cache_dir=cache_dir, workers=workers,
                           name=f"{Path(manifest).resolve().parent.name}-modality-train{per_class}")
    train_codes = [modality_code(r.modality) for r in train.rows]
    classes = tuple(sorted(set(c for c in train_codes if c)))
    if len(classes) < 2:
        raise ValueError(f"{manifest}: the train split holds fewer than two modalities ({classes})")
    log.info("embedding %d train clips (%s)", len(train), dict(Counter(train_codes)))
    weights, bias = fit_softmax(embed_clip_set(encoder, train), np.array([classes.index(c) for c in train_codes]),
                                len(classes))
    head = ModalityHead(classes, weights, bias, min_confidence)
    accuracy, counts, confident = _test_accuracy(head, encoder, manifest, cache_dir, workers, test_per_class)
    info: dict[str, Any] = {"model_id": encoder.model_id, "train_counts": dict(Counter(train_codes)),
                            "test_accuracy": accuracy, "test_counts": counts, "test_confident_fraction": confident,
                            "per_class": per_class, "test_per_class": test_per_class, "seed": seed}
    head = ModalityHead(classes, weights, bias, min_confidence, info)
    written = store_head(model, head, encoder.model_id) if write else []
    return HeadReport(head, dict(Counter(train_codes)), accuracy, counts, confident, written)


def _test_accuracy(head: ModalityHead, encoder: Encoder, manifest: str | Path, cache_dir: str | Path | None,
                   workers: int, per_class: int | None = None
                   ) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    from trainer.clip_cache import load_clip_set

    rows_known = [r for r in load_manifest(manifest, "test") if modality_code(r.modality)]
    if not rows_known:
        log.warning("%s: no test rows; accuracy not measured", manifest)
        return {}, {}, {}
    test = cap_per_class(load_clip_set(manifest, "test", encoder.params, cache_dir=cache_dir, workers=workers),
                         per_class)
    predictions = head.predict(embed_clip_set(encoder, test))
    right: Counter[str] = Counter()
    sure: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for row, (predicted, confidence) in zip(test.rows, predictions):
        code = modality_code(row.modality)
        counts[code] += 1
        right[code] += predicted == code
        sure[code] += confidence >= head.min_confidence
    accuracy = {code: right[code] / n for code, n in counts.items()}
    confident = {code: sure[code] / n for code, n in counts.items()}
    total = sum(counts.values())
    accuracy["all"] = sum(right.values()) / total
    confident["all"] = sum(sure.values()) / total
    return accuracy, dict(counts), confident


def store_head(model: str | Path, head: ModalityHead, model_id: str) -> list[str]:
    """Write ``head`` into the model's metadata and its ``.int8.onnx`` sibling of the same model id (atomic)."""
    from trainer.export import read_metadata

    model = Path(model)
    targets = [model]
    sibling = model.with_name(model.stem + ".int8.onnx")
    if sibling != model and sibling.is_file() and read_metadata(sibling).get(mf.META_MODEL_ID) == model_id:
        targets.append(sibling)
    for path in targets:
        _write_metadata_atomically(path, {mf.META_MODALITY_HEAD: head.to_json()})
        log.info("%s: modality head written (%s)", path, ", ".join(head.classes))
    return [str(p) for p in targets]


def _write_metadata_atomically(path: Path, meta: dict[str, str]) -> None:
    from trainer.export import set_metadata

    proto = onnx.load(str(path))
    set_metadata(proto, meta)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    try:
        onnx.save(proto, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
