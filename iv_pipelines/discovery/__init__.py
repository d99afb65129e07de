"""Discovery: hypothesis generation, null generators, DGM evolution (seed steps 2-8)."""
