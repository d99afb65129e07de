"""DAC packaging: the package directory, its tarball, Dockerfile, Kubernetes manifests and
the package attestation (see `build.py`)."""
