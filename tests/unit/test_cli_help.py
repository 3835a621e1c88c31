"""The parser documents itself: every flag has help, every command an example that parses, and the
completion scripts and the manual page generated from it work in bash and man.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bgpflat.cli import build_parser, main
from bgpflat.cli.arguments.examples import EXAMPLES, command_path
from bgpflat.cli.arguments.parser import subcommand_parsers
from bgpflat.cli.shell_commands import fish_script, man_page, zsh_script

REPO = Path(__file__).resolve().parents[2]
PARSER = build_parser()
ALL = [PARSER, *subcommand_parsers(PARSER)]


@pytest.mark.parametrize("parser", ALL, ids=[p.prog for p in ALL])
def test_every_flag_and_argument_has_help(parser: argparse.ArgumentParser) -> None:
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert not missing, f"{parser.prog}: no help for {missing}"


@pytest.mark.parametrize("parser", ALL, ids=[p.prog for p in ALL])
def test_every_command_has_an_example_in_its_help_that_parses(parser: argparse.ArgumentParser) -> None:
    examples = EXAMPLES.get(command_path(parser))
    assert examples, f"{parser.prog}: no example for its --help"
    assert "examples:\n  " + examples[0] in parser.format_help()
    for line in examples:
        words = shlex.split(line.split(" #")[0].replace("<(", "").replace(")", ""), posix=True)
        # the bgpflat part of a shell line (after `sudo`, `kubectl … |`; before `>`, `&&`)
        words = words[words.index("bgpflat") + 1 :]
        for stop in (">", "&&", "|"):
            if stop in words:
                words = words[: words.index(stop)]
        if "COMMAND" in words:
            continue
        PARSER.parse_args(words)  # a flag renamed without its example fails here


def test_python_dash_m_bgpflat(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "bgpflat", "--version"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert run.returncode == 0 and run.stdout.startswith("bgpflat ")


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers after ``words`` (the last one being completed)."""
    array = " ".join(shlex.quote(w) for w in ("bgpflat", *words))
    program = f'source {script}; COMP_WORDS=({array}); COMP_CWORD={len(words)}; _bgpflat; echo "${{COMPREPLY[@]}}"'
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_completes_commands_flags_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "bgpflat.bash"
    script.write_text(capsys.readouterr().out)
    assert _complete(script, "rou") == ["routes"]
    assert _complete(script, "--debug", "routes", "expected", "--peer") == ["--peer", "--peer-as"]
    assert _complete(script, "routes", "expected", "-o", "") == ["table", "wide", "json", "yaml"]
    assert _complete(script, "lab", "control-plane", "s") == ["status", "seed"]
    (tmp_path / "spec.yaml").write_text("")
    assert _complete(script, "plan", "-f", str(tmp_path / "sp")) == [str(tmp_path / "spec.yaml")]


def test_zsh_and_fish_scripts_name_every_command() -> None:
    zsh, fish = zsh_script(PARSER), fish_script(PARSER)
    assert zsh.startswith("#compdef bgpflat") and "bashcompinit" in zsh
    for parser in ALL[1:]:
        assert f'"{parser.prog}")' in zsh
        assert f"'{parser.prog}'" in fish
    assert "-s o -l output -x -a 'table wide json yaml'" in fish
    for shell in ("zsh", "fish"):
        if shutil.which(shell):
            script = Path(f"/tmp/bgpflat-completion-test.{shell}")
            script.write_text(zsh if shell == "zsh" else fish)
            try:
                assert subprocess.run([shell, "-n", str(script)], capture_output=True).returncode == 0
            finally:
                script.unlink()


def test_man_page_documents_every_command_and_flag() -> None:
    page = man_page(PARSER, version="0.1.0", date=dt.date(2026, 12, 1))
    assert page.startswith('.TH BGPFLAT 1 "2026-12-01" "bgpflat 0.1.0"')
    for parser in ALL[1:]:
        assert ".SS " + parser.prog.replace("-", "\\-") in page
        for action in parser._actions:
            for string in action.option_strings:
                if string not in ("-h", "--help", "--debug", "--color"):
                    assert string.replace("-", "\\-") in page, (parser.prog, string)
    if shutil.which("man"):
        rendered = subprocess.run(
            ["man", "--warnings", "-l", "-"],
            input=page,
            capture_output=True,
            text=True,
            env={**os.environ, "MANWIDTH": "100"},
        )
        assert rendered.returncode == 0 and "bgpflat routes expected --peer IP" in rendered.stdout
        assert rendered.stderr == ""
