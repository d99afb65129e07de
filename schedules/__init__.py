"""Schedules: the operations jobs (daily/weekly/monthly), added by the operations issue."""

schedules: list = []
