"""Featurization: audio files to embeddings through the embedding cache.

- :mod:`~sertk.featurization.embed`: :func:`embed_paths`, batched, through the cache, per-file failures;
- :mod:`~sertk.featurization.composite`: featurizers made of parts (``concat``), each part cached alone;
- :mod:`~sertk.featurization.cache`: the content-addressed SQLite embedding cache.

Where the work runs (in process, or on a Ray cluster) is :mod:`sertk.executors`.
"""
