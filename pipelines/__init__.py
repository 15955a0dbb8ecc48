"""Pipeline graphs and the provider registry. Imports nothing from ``agents`` or ``api``."""
