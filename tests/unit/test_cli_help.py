"""`edge-agent COMMAND --help` is what a technician reads on the device, without the docs:
every command says what it does, every option what it is for."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from edge_agent.cli import COMMANDS, build_parser


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for deeper, subsub in _subcommands(sub):
                    yield f"{name} {deeper}", subsub


def _parsers() -> dict[str, argparse.ArgumentParser]:
    return dict(_subcommands(build_parser()))


def test_the_top_level_help_is_plain_text() -> None:
    text = build_parser().format_help()
    assert "``" not in text  # reStructuredText quoting, not for a terminal


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_says_what_it_does(command: str) -> None:
    parser = _parsers()[command]
    assert parser.description, f"`edge-agent {command} --help` has no description"
    assert "``" not in parser.format_help()


@pytest.mark.parametrize("command", sorted(_parsers()))
def test_every_option_says_what_it_is_for(command: str) -> None:
    parser = _parsers()[command]
    bare = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not action.help
    ]
    assert bare == [], f"`edge-agent {command} --help`: no help for {bare}"
