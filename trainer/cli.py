"""``m3ret-train``: pretrain, export, evaluate (also ``python -m trainer``).

    m3ret-train pretrain --experiment NAME --set key=value ... --run-dir DIR
    m3ret-train export --checkpoint DIR/checkpoints/last.pt --out model.onnx [--card card.json] [--no-int8]
    m3ret-train fit-modality --model model.onnx [--manifest manifest.csv]   (modality head into the metadata)
    m3ret-train evaluate ...            (delegates to trainer.evaluate)

``pretrain`` may be launched by ``torchrun --nproc_per_node N -m trainer pretrain ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from engine.encoder import ModelError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3ret-train", description="Pretrain and export M3Ret encoders.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="self-supervised pretraining (MAE, SimDINO, both, or frame_simdino)")
    p.add_argument("--experiment", default=None, help="configs/<NAME>.json or a path to a JSON config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set train.steps=100 (repeatable)")
    p.add_argument("--run-dir", required=True, type=Path, help="folder for config, metrics and checkpoints")

    e = sub.add_parser("export", help="export a checkpoint's encoder to ONNX (+ int8 copy)")
    e.add_argument("--checkpoint", required=True, type=Path)
    e.add_argument("--out", required=True, type=Path, help="output .onnx path")
    e.add_argument("--card", type=Path, default=None, help="JSON model card embedded in the metadata")
    e.add_argument("--no-int8", action="store_true", help="skip the int8 quantised copy")
    e.add_argument("--student", action="store_true", help="export the student, not the EMA teacher")
    e.add_argument("--no-whitening", action="store_true",
                   help="frame encoder: skip the whitening even where the run's config enables it")
    e.add_argument("--modality-manifest", type=Path, default=None,
                   help="manifest whose train split fits the modality head (default: the shared data's, if any)")
    e.add_argument("--no-modality", action="store_true", help="do not fit the modality head")

    m = sub.add_parser("fit-modality", help="fit the modality head on the train split and store it in the model")
    m.add_argument("--model", required=True, type=Path, help="exported .onnx model (its .int8.onnx copy too)")
    m.add_argument("--manifest", type=Path, default=None,
                   help="manifest CSV with a modality column (default: the shared data's manifest.csv)")
    m.add_argument("--per-class", type=int, default=None, help="train rows per modality (default 300)")
    m.add_argument("--test-per-class", type=int, default=None,
                   help="test rows per modality for the accuracy (default: the whole test split)")
    m.add_argument("--dry-run", action="store_true", help="fit and report, do not write the model file")

    sub.add_parser("evaluate", help="retrieval evaluation (trainer.evaluate)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        from trainer import evaluate

        return int(evaluate.main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        if args.command == "pretrain":
            from trainer.config import load_config

            cfg = load_config(args.experiment, args.overrides)
            if cfg["objective"] == "frame_simdino":  # warm-started frame encoder (trainer.adapt)
                from trainer.adapt import adapt

                print(adapt(cfg, args.run_dir))
            else:
                from trainer.train import pretrain

                print(pretrain(cfg, args.run_dir))
        elif args.command == "export":
            from trainer.export import export_checkpoint

            card = json.loads(args.card.read_text(encoding="utf-8")) if args.card else None
            manifest = None if args.no_modality else _manifest_or_default(args.modality_manifest, required=False)
            report = export_checkpoint(args.checkpoint, args.out, card=card, int8=not args.no_int8,
                                       use_teacher=False if args.student else None,
                                       whitening=not args.no_whitening, modality_manifest=manifest)
            print(json.dumps(report, indent=2))
        elif args.command == "fit-modality":
            from trainer.modality_head import PER_CLASS, fit_modality_head

            head_report = fit_modality_head(args.model, _manifest_or_default(args.manifest),
                                            per_class=args.per_class or PER_CLASS,
                                            test_per_class=args.test_per_class, write=not args.dry_run)
            print(head_report.table())
            print("written: " + (", ".join(head_report.written) or "nothing (--dry-run)"))
    except (ValueError, FileNotFoundError, RuntimeError, ModelError) as exc:
        print(f"m3ret-train: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _manifest_or_default(manifest: Path | None, required: bool = True) -> Path | None:
    """``manifest``, else the shared data's ``manifest.csv`` (``M3RET_DATA`` or ``../shared/data``)."""
    if manifest is not None:
        return manifest
    from engine.config import shared_data_dir

    data = shared_data_dir()
    if data is None:
        if required:
            raise FileNotFoundError("no --manifest given and no shared data found (set M3RET_DATA)")
        log.warning("no shared data found: the model gets no modality head (run `m3ret-train fit-modality` later)")
        return None
    return data / "manifest.csv"


if __name__ == "__main__":
    sys.exit(main())
