"""The WAV-in/WAV-out harness behind ``parley talk``."""
