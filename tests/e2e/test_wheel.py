"""The two wheels as a new user gets them: built, installed into a fresh venv outside the
clone, and run from a directory that is not the clone.

This is the only test that sees the agent the way `pip install` leaves it: package data
(the manifest), console scripts, the simulator as a separate distribution, and no source
tree on the path. Building pulls setuptools and installing pulls the dependencies from the
package index (or pip's cache), so it takes a minute or more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from realdata import require_media, require_model, skip_or_fail

from edge_agent import datafiles

REPO = Path(__file__).resolve().parents[2]
# What a build must not see: another build's leftovers, caches, the venv, local databases.
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "*.db*"
)
_PIP_TIMEOUT_S = 900.0
_COMMAND_TIMEOUT_S = 120.0


def _pip(python: Path | str, *args: str, cwd: Path) -> None:
    """Run pip; a failure to reach the package index skips locally and fails in CI."""
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_PIP_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        skip_or_fail(
            f"pip {args[0]} failed (no package index?):\n{result.stderr[-3000:]}",
            ci_reason=f"CI is set but pip {args[0]} failed:\n{result.stderr[-3000:]}",
        )


def _absolute_path_list(value: str) -> str:
    return os.pathsep.join(os.path.abspath(part) for part in value.split(os.pathsep) if part)


def _user_env(venv: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a user of the installed wheels: venv first on PATH, nothing
    pointing into the clone, the data search paths as the test run has them (absolute)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", datafiles.MANIFEST_ENV}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env[datafiles.CACHE_DIR_ENV] = str(tmp_path / "cache")
    for key in (datafiles.MODEL_PATH_ENV, datafiles.MEDIA_PATH_ENV):
        if env.get(key):
            env[key] = _absolute_path_list(env[key])
    return env


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_wheels_install_into_a_fresh_venv_and_work_outside_the_clone(tmp_path: Path) -> None:
    require_model("ssd_mobilenet_v1")
    require_media("coral_grace_hopper.bmp")
    require_media("intel_one-by-one-person-detection.mp4")  # the demo's street scene cuts it
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        skip_or_fail("mosquitto is missing (the demo starts one)")

    sources = tmp_path / "src"
    shutil.copytree(REPO, sources, ignore=_NOT_SOURCES, symlinks=True)
    wheels = tmp_path / "wheels"
    _pip(sys.executable, "wheel", "--no-deps", "-w", str(wheels), ".", "./hw-sim", cwd=sources)
    built = sorted(path.name for path in wheels.glob("*.whl"))
    assert [name.split("-")[0] for name in built] == ["edge_agent", "hw_sim"], built

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # Both wheels on one command line: hw-sim's `edge-agent` requirement is then the wheel
    # beside it, never a distribution of that name from the index.
    _pip(python, "install", *(str(wheels / name) for name in built), cwd=tmp_path)
    shutil.rmtree(sources)  # nothing of the clone's sources is left to import by mistake

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _user_env(venv, tmp_path)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT_S,
            check=False,
        )

    where = run(str(python), "-c", "import edge_agent, hw_sim; print(edge_agent.__file__)")
    assert where.returncode == 0, where.stderr
    site_packages = str(venv / "lib")
    assert where.stdout.strip().startswith(site_packages), where.stdout
    for dist in ("edge_agent", "hw_sim"):
        licences = list((venv / "lib").glob(f"python*/site-packages/{dist}-*.dist-info/**/LICENSE"))
        assert licences and "Apache License" in licences[0].read_text(), dist

    listed = run("edge-agent", "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert any(
        line.startswith("ssd_mobilenet_v1 ") and " ok " in line
        for line in listed.stdout.splitlines()
    ), listed.stdout

    site_config = REPO / "examples" / "police-post.yaml"  # its TLS files live on the device
    checked = run("edge-agent", "check-config", "--offline", str(site_config))
    assert checked.returncode == 0, checked.stderr
    sim_config = REPO / "examples" / "local-sim.yaml"  # a `sim` camera: needs hw_sim's scenes
    checked = run("edge-agent", "check-config", str(sim_config))
    assert checked.returncode == 0, checked.stderr

    detected = run("edge-agent", "detect", "coral_grace_hopper.bmp", "--json")
    assert detected.returncode == 0, detected.stderr
    assert '"label": "person"' in detected.stdout, detected.stdout

    demo = run("edge-agent", "demo", "--seconds", "5")
    assert demo.returncode == 0, demo.stderr
    assert "pip install -e" not in demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    assert any("status online" in line for line in lines), demo.stdout
    assert any("status stopped" in line for line in lines), demo.stdout
