"""Evaluation: IR file formats, trec_eval-compatible metrics, significance tests, two-stage experiments."""
