"""The base layer: generic helpers every other part of the engine may use; it imports nothing of the pack."""
