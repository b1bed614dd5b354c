"""The typed public API (issue 14 item 4; docs/typing.md): customer_activity_features.py passes mypy
with the project's configuration (every function annotated), and a user's code
(tests/typing_user.py) gets the types the annotations promise: its ``# error: CODE`` lines are
reported, every other line passes, each ``reveal_type`` shows its ``# revealed:`` type.

.ci/run also runs this module as a script from outside the source tree, against the installed
wheel, where only the PEP 561 marker makes mypy read the module's annotations at all:

    python tests/test_typing.py installed     # cwd outside the checkout, the wheel installed
"""

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = Path(__file__).resolve().parent / "typing_user.py"
_MARK = re.compile(r"  # (?P<kind>error|revealed): (?P<what>[^#]+)$")
_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*?)(?:  \[(?P<code>[\w-]+)\])?$")


def expected(path=USER):
    """{line: ('error', code) or ('revealed', type)} from the markers of the user file."""
    marks = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = _MARK.search(line)
        if m:
            marks[number] = (m["kind"], m["what"].strip())
    return marks


def mismatches(output, user_name, marks):
    """What mypy's ``output`` says that the markers do not, and the markers it does not meet."""
    found, wrong = {}, []
    for line in output.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        where = Path(m["file"]).name
        if where != user_name:
            if m["kind"] == "error":
                wrong.append(f"error outside the user file: {line}")
            continue
        number = int(m["line"])
        if m["kind"] == "error":
            found[number] = ("error", m["code"])
        elif m["text"].startswith("Revealed type is "):
            found[number] = ("revealed", m["text"].removeprefix("Revealed type is ").strip('"'))
    for number in sorted(set(found) | set(marks)):
        if found.get(number) != marks.get(number):
            wrong.append(f"line {number}: mypy says {found.get(number)}, the file expects {marks.get(number)}")
    return wrong


def _mypy(args, cwd):
    import os

    from mypy import api

    here = os.getcwd()
    os.chdir(cwd)
    try:
        stdout, stderr, _ = api.run(args)
    finally:
        os.chdir(here)
    return stdout + stderr


def test_the_public_module_and_a_users_code_type_check():
    # one run: the public module under the project's configuration (strict for it) and the user file
    output = _mypy(["--cache-dir", "/dev/null", "customer_activity_features.py", str(USER.relative_to(ROOT))], ROOT)
    assert mismatches(output, USER.name, expected()) == [], output


def installed():
    """Run from outside the source tree with the wheel installed: the user file type-checks
    against the installed module (which mypy reads only when it is marked typed)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / USER.name
        shutil.copy(USER, copy)
        output = _mypy(["--cache-dir", "/dev/null", str(copy)], tmp)
    marks = expected()
    wrong = mismatches(output, USER.name, marks)
    if wrong:
        print(output)
        print("\n".join(wrong))
        sys.exit(1)
    kinds = [kind for kind, _ in marks.values()]
    print(f"the installed module is typed for mypy: the {kinds.count('error')} expected errors and "
          f"{kinds.count('revealed')} revealed types of {USER.name}, nothing else")


if __name__ == "__main__":
    if sys.argv[1:] == ["installed"]:
        installed()
    else:
        sys.exit("usage: python tests/test_typing.py installed")
