"""Quarterly data files: their upload, their parsing, and the record of each parse run."""
