"""A "host" of the several-hosts tests: a process tree's own DAGSTER_HOME and temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

from payout_assets_tests.cli_helpers import project_env


def host_env(
    tmp_path: Path, name: str, endpoint: str, instance_yaml: Path, **shared: str
) -> dict[str, str]:
    """One "host": its own DAGSTER_HOME (holding ``instance_yaml``) and temp dir; what the hosts
    share (the store, the instance's database, Redis, ...) is ``shared``."""
    home = tmp_path / name / "home"
    env = project_env(home, endpoint)
    shutil.copyfile(instance_yaml, home / "dagster.yaml")
    temp = tmp_path / name / "tmp"
    temp.mkdir()
    return {**env, "TMPDIR": str(temp), **shared}
