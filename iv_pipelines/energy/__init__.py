"""Measured energy: per-step meters, the DAC energy signature, the Energy Atlas interface."""
