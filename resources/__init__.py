"""Bundled files (the default model and its card), found through ``importlib.resources``."""
