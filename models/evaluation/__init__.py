"""Scoring: amodal-mask protocols and completion metrics, the synthetic benchmark generator, evaluation runs."""
