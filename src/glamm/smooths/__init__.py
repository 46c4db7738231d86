"""Penalized smooth terms (``s(x)``) and their mixed-model representation."""
