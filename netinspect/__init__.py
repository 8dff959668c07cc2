"""netinspect: a command-line network inspector for PyTorch."""

__version__ = "0.1.0"
