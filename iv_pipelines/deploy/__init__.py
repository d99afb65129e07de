"""Deployers: run a DAC package locally (supervised process), in Docker, or on Kubernetes."""

from __future__ import annotations


class DeployError(RuntimeError):
    """A deployment cannot proceed; the message names the target and the reason."""
