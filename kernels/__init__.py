"""Triton kernels, each with a torch/numpy reference twin. Imported lazily by resources."""
