"""gardend: a Garden API server that runs containers through containerd."""

__version__ = "0.1.0"
