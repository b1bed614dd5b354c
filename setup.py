"""The one build step pyproject.toml cannot declare: the PEP 561 marker of the public module.

``customer_activity_features`` is a single-file module, and PEP 561 has no marker for one
(``py.typed`` marks a package directory). Type checkers look for the marker in the directory
named after the top-level module, so the wheel ships an otherwise empty directory
``customer_activity_features/`` holding ``py.typed`` beside ``customer_activity_features.py``
(Python imports the module: a directory without ``__init__.py`` never shadows a module of the
same name on the same path entry). Declaring that directory a package would make an editable
install map the name to it, so the marker is written here, into the build of a wheel only
(an editable install type-checks the source tree itself). docs/typing.md has the rest.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MARKER = Path("customer_activity_features") / "py.typed"


class build_py_with_module_marker(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            marker = Path(self.build_lib) / MARKER
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("")

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(Path(self.build_lib) / MARKER)]


setup(cmdclass={"build_py": build_py_with_module_marker})
