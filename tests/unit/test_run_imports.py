"""What ``edge-agent run`` imports: code only other commands, the technician page or other
configs need stays out of the running agent's memory (bench/README.md, memory).

Each check runs in a fresh interpreter, so that what this test process imported already
does not hide an import."""

from __future__ import annotations

import json
import subprocess
import sys

from edge_agent.cli import COMMANDS, build_parser, named_command


def imported_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(completed.stdout.splitlines()[-1]))


def test_run_command_line_imports_neither_other_commands_nor_the_page() -> None:
    modules = imported_after(
        "from edge_agent.cli import build_parser, named_command\n"
        "argv = ['--log-level', 'DEBUG', 'run', '--config', 'x.yaml']\n"
        "build_parser(named_command(argv)).parse_args(argv)\n"
        "import edge_agent.app"
    )
    assert "edge_agent.app" in modules
    unwanted = {
        "edge_agent.web.server",  # the page: imported when web.enabled starts it
        "http.server",
        "edge_agent.selftest",
        "edge_agent.fleet",
        "edge_agent.overlay",
        "edge_agent.cli.demo",
        "edge_agent.cli.web_password",
    }
    assert modules.isdisjoint(unwanted), sorted(modules & unwanted)


def test_nms_does_not_import_numpy_ma() -> None:
    modules = imported_after(
        "import numpy as np\n"
        "from edge_agent.detect.postprocess import RawDetections, nms_grouped\n"
        "raw = RawDetections(np.array([[0, 0, .1, .1], [.01, .01, .1, .1], [.5, .5, .6, .6]],"
        " np.float32), np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 2]))\n"
        "assert len(nms_grouped(raw, ['person', 'bicycle', 'car'], 0.5, 10).scores) == 2"
    )
    assert "numpy.ma" not in modules


def test_named_command_is_the_first_command_word() -> None:
    assert named_command(["--log-level", "DEBUG", "run", "--config", "c.yaml"]) == "run"
    assert named_command(["models", "fetch", "run"]) == "models"
    assert named_command(["--help"]) is None
    assert named_command(["bogus"]) is None


def test_the_whole_parser_still_lists_every_command() -> None:
    help_text = build_parser().format_help()
    for name in COMMANDS:
        assert name in help_text
    only = build_parser("run").format_help()
    assert "run" in only and "web-password" not in only
