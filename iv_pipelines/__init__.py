"""Industriverse DAC Factory: the domain core.

Plain Python: no Dagster, and nothing from the layers above it (`resources/`, `defs/` (the
Dagster layer, one module per UI group), `iv_app/`, where the code location is assembled);
no two of its parts import each other in a cycle (tests/test_layers.py). Every path under
the storage root comes from `iv_pipelines.storage`.
"""

__version__ = "0.1.0"
