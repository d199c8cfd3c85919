"""Compiler passes, one per file, each Graph -> Graph (see pipeline.py for the order)."""
