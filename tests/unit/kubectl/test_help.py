"""``kubectl hal9 --help`` and each command's help are complete: a description, every option
explained, and the exit codes."""

from __future__ import annotations

import argparse

import pytest

from hal9_migration.kubectl.main import CONTROLS, parser

COMMANDS = ["list", "status", "history", "plan", *(verb.value for verb in CONTROLS)]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_top_help_lists_every_command_with_a_line_and_the_exit_codes() -> None:
    text = parser().format_help()
    assert sorted(subcommands()) == sorted(COMMANDS)
    for name in COMMANDS:
        assert f"    {name} " in text, name
    assert "exit codes" in text and "3  the cluster or the object cannot be reached" in text


@pytest.mark.parametrize("name", COMMANDS)
def test_each_command_explains_itself_and_every_option(name: str) -> None:
    command = subcommands()[name]
    assert command.description and len(command.description) > 20
    for action in command._actions:
        assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    text = command.format_help()
    assert "exit codes" in text and "--namespace" in text and "--context" in text
    assert all(len(line) <= 100 for line in text.splitlines()), "wrapped for a terminal"
