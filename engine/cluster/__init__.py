"""Indexing a large archive on a Ray cluster (optional extra ``[cluster]``: ``pip install 'm3ret[cluster]'``).

- ``engine.cluster.shards``: the deterministic cut of an archive's units into shards and the shard files
  (results of one shard, written atomically); no Ray needed.
- ``engine.cluster.pipeline``: the Ray Data pipeline (read + preprocess tasks, an ONNX embedding actor pool).
- ``engine.cluster.indexer``: ``index_paths_on_ray`` — discovery and change detection in the driver (the local
  indexer's), the pipeline for the changed units, finished shards merged into the catalog one transaction each,
  the vector index rebuilt once at the end: the same library ``engine.indexer.index_paths`` builds.
- ``engine.cluster.cli``: ``m3ret index --ray [ADDRESS]``.

Neither the desktop app nor the packaged bundle import this package (``packaging/bundle_rules.py`` excludes ray).
"""
