"""Industriverse DAC Factory: the domain core.

Plain Python: no Dagster, and nothing from the layers above it (`resources/`, `assets/`,
`schedules/`, `sensors/`, `iv_app/`, where the code location is assembled); no two of its
subpackages import each other (tests/test_layers.py).
"""

__version__ = "0.1.0"
