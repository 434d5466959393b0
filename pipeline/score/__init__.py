"""MLLM scoring (Dog-IQA style): standard-guided levels, mix-grained regions, the scoring run."""
