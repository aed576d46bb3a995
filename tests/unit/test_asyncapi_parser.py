"""docs/asyncapi.yaml passes the official AsyncAPI parser (``@asyncapi/parser`` from npm,
pinned in tools/asyncapi/package-lock.json and installed by scripts/setup.sh with
``npm ci``): what AsyncAPI tools (generators, Studio) read is what the docs say."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from realdata import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "asyncapi"
DOCS = REPO / "docs"
ALLOWED_INFO = {"asyncapi-latest-version"}  # 3.0.0 on purpose: what most tools read today


def parse(document: Path) -> tuple[int, list[dict[str, str]]]:
    """The parser's exit status and diagnostics for ``document``."""
    node = shutil.which("node")
    if node is None or not (TOOL / "node_modules" / "@asyncapi" / "parser").is_dir():
        skip_or_fail(
            "node or the AsyncAPI parser is not installed (scripts/setup.sh runs npm ci in "
            "tools/asyncapi)"
        )
    result = subprocess.run(
        [node, str(TOOL / "check.mjs"), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    diagnostics: list[dict[str, str]] = json.loads(result.stdout)
    return result.returncode, diagnostics


def test_the_asyncapi_document_passes_the_official_parser() -> None:
    status, diagnostics = parse(DOCS / "asyncapi.yaml")
    problems = [
        d
        for d in diagnostics
        if d["severity"] in ("error", "warning") or d["code"] not in ALLOWED_INFO
    ]
    assert problems == [] and status == 0


def test_the_parser_check_fails_on_a_binding_in_the_wrong_place(tmp_path: Path) -> None:
    """The mistake the parser found before: a message expiry in a message binding (MQTT
    binding 0.2.0 has it on the operation)."""
    text = (DOCS / "asyncapi.yaml").read_text(encoding="utf-8")
    wrong = text.replace(
        "          contentType: image/jpeg\n          bindingVersion: 0.2.0",
        "          contentType: image/jpeg\n          messageExpiryInterval: 10\n"
        "          bindingVersion: 0.2.0",
        1,
    )
    assert wrong != text
    (tmp_path / "asyncapi.yaml").write_text(wrong, encoding="utf-8")
    (tmp_path / "schemas").symlink_to(DOCS / "schemas")  # the $refs are relative
    status, diagnostics = parse(tmp_path / "asyncapi.yaml")
    assert status == 1
    paths = {d["path"] for d in diagnostics if d["severity"] == "error"}
    assert any(p.endswith("bindings.mqtt.messageExpiryInterval") for p in paths), diagnostics


def test_the_parser_is_pinned_and_its_install_is_not_committed() -> None:
    lock = json.loads((TOOL / "package-lock.json").read_text(encoding="utf-8"))
    pinned = json.loads((TOOL / "package.json").read_text(encoding="utf-8"))["dependencies"]
    locked = lock["packages"]["node_modules/@asyncapi/parser"]["version"]
    assert locked == pinned["@asyncapi/parser"]  # an exact version, the one npm ci installs
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(TOOL / "node_modules")], cwd=REPO, check=False
    )
    assert ignored.returncode == 0, "tools/asyncapi/node_modules must be git-ignored"
