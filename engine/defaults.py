"""Defaults shared by the command line and the Python API (a light module: no heavy imports)."""

DEFAULT_CACHE = ".lstmknn_cache"  # the fold cache folder, relative to the working directory
