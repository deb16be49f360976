"""The contract between the trainer's ONNX export and the engine's encoder runtime.

An M3Ret model file is ONNX with:

- input ``clip``: float32 ``B 3 T H W`` (B and T dynamic; T = 2 for 2D cases, 16 for volumes and videos),
  produced by ``engine.preprocess.case_to_clip`` with the parameters stored in the metadata;
- output ``embedding``: float32 ``B D``, L2-normalised;
- metadata properties (``onnx.ModelProto.metadata_props``), all strings, keys below.
"""

INPUT_NAME = "clip"
OUTPUT_NAME = "embedding"

META_MODEL_ID = "m3ret.model_id"  # unique id of the weights, e.g. "m3ret-vit-tiny-simdino-2026-11-25-ab12cd34"
META_EMBED_DIM = "m3ret.embed_dim"  # "192"
META_PREPROCESS = "m3ret.preprocess"  # PreprocessParams.to_json()
META_ARCH = "m3ret.arch"  # "vit_tiny", ...
META_CARD = "m3ret.card"  # optional JSON: recipe, data, steps, evaluation summary
META_MODALITY_HEAD = "m3ret.modality_head"  # optional JSON: engine.modality.ModalityHead (m3ret-train fit-modality)

DEFAULT_MODEL_FILENAME = "m3ret-default.onnx"  # in resources/models/
