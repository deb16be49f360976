"""Readers: any path (file or folder) to ``Case`` objects. See ``engine.io.scan.read_path``."""

from engine.io.case import Case, Failure, ReadError

__all__ = ["Case", "Failure", "ReadError"]
