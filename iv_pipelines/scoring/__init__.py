"""OBMI operators, conformal calibration and the Open-ended Discovery Score (ODS)."""
