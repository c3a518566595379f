"""The README's commands, run as written: the Quick start's main job and every command of the tour, in a
scratch folder holding the shipped programs (each must exit 0)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lsrl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """Every indented `lsrl ...` line of the README (after `&&` on an install line), comments dropped."""
    out = []
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^ {4}(?:pip install .*&& )?(lsrl .*)$", line)
        if m:
            out.append(m.group(1))
    return out


def test_the_readme_lists_its_commands():
    cmds = readme_commands()
    assert cmds[0] == "lsrl verify programs/tok2tok.lsrl --backend rnn --dtype float32"  # the Quick start's job
    assert len(cmds) >= 10 and all(c.split()[1] in {"check", "run", "ir", "compile", "verify", "export", "trace",
                                                    "dataset", "graph", "obfuscate", "zoo"} for c in cmds)


def test_every_readme_command_succeeds(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")  # the tour exports to transformers' classes
    (tmp_path / "programs").symlink_to(ROOT / "programs")
    monkeypatch.chdir(tmp_path)
    for cmd in readme_commands():
        args = shlex.split(cmd, comments=True)[1:]
        assert main(args) == 0, f"{cmd}: {capsys.readouterr().err}"
        capsys.readouterr()
