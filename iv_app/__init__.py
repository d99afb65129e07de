"""The application layer: the Dagster code location (`iv_app.definitions`), the `iv` command
line (`iv_app.cli`), `make demo` (`iv_app.demo`) and the small sample DAC tests and benches
build (`iv_app.sample`). The domain core (`iv_pipelines`) never imports this package, Dagster,
or the resources / assets / schedules / sensors layers (tests/test_layers.py)."""
