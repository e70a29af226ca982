"""meddx: a reproducible experiment pipeline for computer-aided medical diagnosis."""

__version__ = "0.1.0"
