"""Sensors: threshold and event sensors, each doing bounded, cursor-based work."""
