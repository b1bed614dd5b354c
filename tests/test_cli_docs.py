"""docs/cli.md documents every `caf` command with its current --help text, and
the README's "Look inside with sqlite3" commands run.

When a command or its help changes, refresh the help blocks of docs/cli.md with

    .venv/bin/python tests/test_cli_docs.py --update

(the prose around them is written by hand; a command without a section and a
block makes test_every_command_is_documented fail).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

from store.cli import cli  # noqa: E402

DOCS = REPO / "docs" / "cli.md"
README = REPO / "README.md"
HELP_WIDTH = 80
BLOCK = re.compile(
    r"(?P<open><!-- \[\[\[help (?P<command>caf(?: [a-z-]+)*)\]\]\] -->\n```text\n)(?P<body>.*?)(?P<close>```\n<!-- \[\[\[end\]\]\] -->)",
    re.S,
)


def command_paths(group=cli, prefix=("caf",)):
    """Every command path: ('caf',), ('caf', 'init'), ..., ('caf', 'export', 'rfm')."""
    paths = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths += command_paths(command, prefix + (name,))
        else:
            paths.append(prefix + (name,))
    return paths


def help_text(path):
    result = CliRunner().invoke(cli, list(path[1:]) + ["--help"], prog_name="caf", terminal_width=HELP_WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def documented_blocks(text):
    return {m.group("command"): m.group("body") for m in BLOCK.finditer(text)}


def update_docs():
    text = DOCS.read_text(encoding="utf-8")

    def refresh(match):
        path = tuple(match.group("command").split())
        return match.group("open") + help_text(path) + match.group("close")

    DOCS.write_text(BLOCK.sub(refresh, text), encoding="utf-8")


# -- docs/cli.md ------------------------------------------------------------------------
def test_every_command_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    blocks = documented_blocks(text)
    missing = []
    for path in command_paths():
        name = " ".join(path)
        if name not in blocks:
            missing.append(f"{name}: no help block")
        if len(path) > 1 and not re.search(rf"^#+ `?{re.escape(name)}`?\s*$", text, re.M):
            missing.append(f"{name}: no section heading")
    assert not missing, "undocumented in docs/cli.md: " + "; ".join(missing)


def test_docs_name_no_command_that_does_not_exist():
    known = {" ".join(path) for path in command_paths()}
    stale = set(documented_blocks(DOCS.read_text(encoding="utf-8"))) - known
    assert not stale, f"docs/cli.md documents commands that do not exist: {sorted(stale)}"


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_help_blocks_match_the_code(path):
    blocks = documented_blocks(DOCS.read_text(encoding="utf-8"))
    name = " ".join(path)
    assert name in blocks, f"{name} has no help block in docs/cli.md"
    assert blocks[name] == help_text(path), (
        f"the --help of '{name}' changed: run `.venv/bin/python tests/test_cli_docs.py --update`")


# -- README: look inside with sqlite3 -------------------------------------------------------
def readme_sqlite_commands():
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    section = re.search(r"^## Look inside with sqlite3\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not section:
        return []
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    if not block:
        return []
    commands, current = [], ""
    for line in block.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


def test_readme_sqlite_section_runs(tmp_path):
    commands = readme_sqlite_commands()
    if not commands:
        pytest.skip("README.md has no 'Look inside with sqlite3' section yet")
    if shutil.which("sqlite3") is None:
        pytest.skip("no sqlite3 binary on PATH")
    db = tmp_path / "customer_activity.db"
    result = CliRunner().invoke(cli, ["--db", str(db), "demo", "--customers", "200"], prog_name="caf")
    assert result.exit_code == 0, result.output
    assert all(c.startswith("sqlite3 ") and "customer_activity.db" in c for c in commands), commands
    for command in commands:
        proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              executable=shutil.which("bash") or "/bin/sh")
        assert proc.returncode == 0, (command, proc.stderr)
        assert proc.stderr == "", (command, proc.stderr)
        assert proc.stdout.strip(), f"no output from: {command}"


def test_links_between_docs_resolve():
    text = DOCS.read_text(encoding="utf-8")
    missing = [target for target in re.findall(r"\]\(([^)#:]+\.md)\)", text) if not (DOCS.parent / target).exists()]
    assert not missing, f"docs/cli.md links to missing files: {missing}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update_docs()
        print(f"updated the help blocks of {DOCS}")
    else:
        print(__doc__)
