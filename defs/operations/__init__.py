"""UI group `operations`: what runs on schedules and sensors over the deployed fleet
(health.py, energy.py, reports.py, research.py, base_model.py)."""
