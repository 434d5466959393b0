"""Writers of the export formats that need more than a per-record mapping (pipeline/export.py
dispatches to them): LLaVA 1.5 / OneVision, DeQA-Score soft labels, Q-Insight RL files and
the one-schema JSON Lines rows. Each module names the consumer code it follows."""
