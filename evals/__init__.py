"""Benchmark runners and scorers (BFCL-v3, ACEBench). Never imports textual or console/."""
