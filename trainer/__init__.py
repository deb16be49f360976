"""M3Ret trainer (torch): MAE + SimDINO pretraining, ONNX export, evaluation."""
