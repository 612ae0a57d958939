"""Model families: a frozen config per model (config.py) and shared transformer blocks."""
