"""The capsule runtime: the FastAPI app every DAC package serves (see `app.py`)."""
