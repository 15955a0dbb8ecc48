"""Parley: shared settings, domain models, errors and the command line."""

__version__ = "0.1.0"
