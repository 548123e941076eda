"""gpucluster: GPU clusters from one typed spec per environment."""

__version__ = "0.1.0"
