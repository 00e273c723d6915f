"""Evaluation harness: batch runs over datasets, results schema, BD-rate tables, plots, anchors."""
