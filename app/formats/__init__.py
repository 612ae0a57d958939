"""Weight file formats: GGUF and safetensors, parsed from one byte source (sources.py)."""
