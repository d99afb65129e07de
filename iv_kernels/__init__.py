"""Triton kernels, each with a torch/numpy reference twin. Imported lazily by resources.

Named `iv_kernels`, not `kernels` (the design card's name): transformers 5 requires Hugging
Face's `kernels` distribution, and a top-level `kernels` package of ours shadowed it whenever
the repository root was on sys.path (tests, bench scripts), breaking `import peft`."""
