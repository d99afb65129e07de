"""Environment helper and dependency pins."""

import re
from importlib import metadata

import pytest

from iv_pipelines.env import UnknownEnvironmentError, deployment_env


@pytest.mark.parametrize(
    "value, expected",
    [(None, "local"), ("local", "local"), ("", "local"), ("PROD", "prod"), ("production", "prod")],
)
def test_deployment_env(value, expected):
    environ = {} if value is None else {"IV_ENV": value}
    assert deployment_env(environ) == expected


def test_unknown_env_is_rejected_with_the_allowed_values():
    with pytest.raises(UnknownEnvironmentError, match="staging.*local, prod"):
        deployment_env({"IV_ENV": "staging"})


def _dagster_dists() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("dagster"):
            out[name] = dist.version
    return out


def expected_integration_version(core: str) -> str:
    """Dagster releases core 1.M.N together with integrations 0.(M+16).N."""
    major, minor, patch = core.split(".")[:3]
    assert major == "1", f"unexpected Dagster core major version {core}"
    return f"0.{int(minor) + 16}.{patch}"


def test_mapping_rule_matches_the_known_pair():
    assert expected_integration_version("1.13.27") == "0.29.27"


def test_installed_dagster_packages_match_core():
    dists = _dagster_dists()
    core = dists["dagster"]
    assert core == "1.13.27", "pyproject pins dagster==1.13.27"
    mismatched = []
    for name, version in sorted(dists.items()):
        if name == "dagster":
            continue
        if version.startswith("1."):
            if version != core:
                mismatched.append(f"{name}=={version} (core {core})")
        elif version.startswith("0."):
            if version != expected_integration_version(core):
                mismatched.append(f"{name}=={version} (expected {expected_integration_version(core)})")
        else:
            mismatched.append(f"{name}=={version} (unknown version scheme)")
    assert not mismatched, "Dagster packages out of step with core: " + ", ".join(mismatched)
    # the integrations we depend on are really there, not silently missing
    for needed in ("dagster-postgres", "dagster-k8s", "dagster-docker", "dagster-webserver"):
        assert needed in dists


def test_pyproject_pins_are_exact():
    import tomllib

    from conftest import REPO

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        if re.match(r"dagster", dep):
            assert "==" in dep, f"{dep} must be pinned exactly"
