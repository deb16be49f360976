"""Self-supervised objectives: masked autoencoding (MAE) and SimDINO self-distillation."""
