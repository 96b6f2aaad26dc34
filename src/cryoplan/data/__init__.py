"""Packaged case files (the demo)."""
