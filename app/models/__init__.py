"""Model families: a frozen config per model (config.py), shared transformer blocks (blocks.py),
the weights loader (weights.py, tensors.py) and the generation steps (model.py)."""
from .config import ModelConfig, UnsupportedArchitectureError
from .loader import ModelMemoryError, ModelSourceError, load_model
from .model import ContextLengthError, Model

__all__ = ["ContextLengthError", "Model", "ModelConfig", "ModelMemoryError", "ModelSourceError",
           "UnsupportedArchitectureError", "load_model"]
