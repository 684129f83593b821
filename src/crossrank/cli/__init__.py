"""Command-line interface: ``crossrank <verb>``."""
