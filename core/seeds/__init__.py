"""The seed pool: importers (LoopTool-23k / ToolACE / xLAM shapes), procedural Dual-Tree synthesis with
dialogue simulation, LLM-driven synthesis, rule validation and the contamination guard (see pool.py)."""
