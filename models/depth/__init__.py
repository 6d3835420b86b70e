"""Pseudo-depth: Depth Anything V2 as the authors ran it, its checkpoint formats, clip-level normalization."""
