"""Wheels for the agent-update tests, written as zip files (the wheel format, PEP 427).

``agent_wheel`` is this project's agent at another version: every file of ``edge_agent/``
in this checkout (code and package data), ``__version__`` set, the ``edge-agent`` entry
point, and the dist-info pip needs. Why not ``pip wheel``: the dev venv's setuptools (65)
cannot read this pyproject (a PEP 639 license string) and has no ``bdist_wheel``; a build
with isolation needs the package index. pip installs this wheel as it installs a built one.
``crafted_wheel`` is an agent of a few files (one that cannot import, one that dies at run).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_SKIP = ("__pycache__", ".pyc", ".mypy_cache")


def _record(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write(out_dir: Path, version: str, files: dict[str, bytes]) -> Path:
    dist = f"edge_agent-{version}.dist-info"
    files = {
        **files,
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: edge-agent\nVersion: {version}\n"
            "Requires-Dist: numpy>=1.24\nRequires-Dist: pydantic<3,>=2.5\n"
        ).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": b"[console_scripts]\nedge-agent = edge_agent.cli:main\n",
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"edge_agent-{version}-py3-none-any.whl"
    records = [_record(name, data) for name, data in files.items()]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/RECORD", "\n".join([*records, f"{dist}/RECORD,,"]) + "\n")
    return wheel


def agent_wheel(out_dir: Path, version: str) -> Path:
    """This checkout's agent as ``edge_agent-{version}-py3-none-any.whl``."""
    files: dict[str, bytes] = {}
    for path in sorted((REPO / "edge_agent").rglob("*")):
        if path.is_file() and not any(part in str(path) for part in _SKIP):
            files[path.relative_to(REPO).as_posix()] = path.read_bytes()
    init = "edge_agent/__init__.py"
    text = files[init].decode()
    assert '__version__ = "' in text
    head, _, rest = text.partition('__version__ = "')
    files[init] = (head + f'__version__ = "{version}"' + rest.partition('"')[2]).encode()
    return _write(out_dir, version, files)


def crafted_wheel(out_dir: Path, version: str, files: dict[str, str]) -> Path:
    """An ``edge_agent`` of ``files`` (module path -> source) at ``version``."""
    return _write(out_dir, version, {name: text.encode() for name, text in files.items()})


def cannot_import(out_dir: Path, version: str) -> Path:
    """An agent whose package raises at import (a release broken past its signature)."""
    return crafted_wheel(
        out_dir,
        version,
        {"edge_agent/__init__.py": 'raise ImportError("this release is broken")\n'},
    )


def dies_at_run(out_dir: Path, version: str) -> Path:
    """An agent that installs and says its version, and exits 1 on anything else."""
    return crafted_wheel(
        out_dir,
        version,
        {
            "edge_agent/__init__.py": f'__version__ = "{version}"\n',
            "edge_agent/cli/__init__.py": (
                "import sys\n\n\ndef main():\n"
                "    if sys.argv[1:] == ['--version']:\n"
                f"        print('edge-agent {version}')\n"
                "        return 0\n"
                "    print('crashed at start', file=sys.stderr)\n"
                "    return 1\n"
            ),
            "edge_agent/cli/__main__.py": "import sys\nfrom edge_agent.cli import main\n"
            "sys.exit(main())\n",
        },
    )
