"""Data: the memory-mapped indexed format, prompt templates, datasets and collators."""
