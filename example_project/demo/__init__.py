"""The ``demo`` command: the whole service run once, end to end, on sample files."""
