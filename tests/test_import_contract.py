"""The layers import only what DESIGN.md lets them (functional core, imperative shell).

In the spirit of httpx's ``tests/test_exported_members.py``, but for imports: the source files
are parsed with :mod:`ast` (nothing is imported, so ``sys.modules`` and import order play no
part), and every import statement is counted wherever it is, at module level, inside a function
or a ``try``. Relative imports are resolved, and ``from package import name`` counts as an
import of ``package.name`` when that is a module, of ``package`` otherwise (so
``from outreach import AsyncClient`` is an import of the package root, which re-exports the
client).

Imports under ``if TYPE_CHECKING:`` are allowed, for annotations only: they never run, so they
create no run-time dependency and no import cycle. Imports through :mod:`importlib` with a
computed name (the lazy provider adapters in ``outreach.channels``) are not seen.

The rules:

- ``outreach._engine`` (pure ``decide()``) imports ``outreach._models``, ``outreach._durations``,
  ``outreach._zones`` and the standard library only: no I/O layer, no third-party package;
- ``outreach._zones`` (a number's time zones) imports the models, ``phonenumbers`` (pure data)
  and the standard library only;
- nothing in ``outreach.channels`` or ``outreach.stores`` imports the layers above them (runner,
  client, webhooks, CLI, sandbox, simulator, the package root);
- ``outreach._models`` imports no I/O layer either (channels, stores, runner, client, webhooks).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "outreach"

ABOVE_CHANNELS_AND_STORES = (
    "outreach._runner",
    "outreach._client",
    "outreach._webhooks",
    "outreach.webhooks",
    "outreach.cli",
    "outreach._sandbox",
    "outreach._simulator",
    "outreach.testing",
    "outreach.demo",
)
"""What channels and stores must not import (besides the package root, checked apart)."""

IO_LAYERS = ("outreach.channels", "outreach.stores", *ABOVE_CHANNELS_AND_STORES)
"""Everything that does I/O, or drives what does."""

ENGINE_MAY_IMPORT = ("outreach._models", "outreach._durations", "outreach._zones")
ZONES_MAY_IMPORT = ("outreach._models", "phonenumbers")


@dataclass(frozen=True)
class Import:
    """One imported module, where it is imported and how the statement reads."""

    file: str
    """Relative to the folder holding ``src``: ``src/outreach/_engine.py``."""
    line: int
    module: str
    statement: str
    type_checking: bool

    def __str__(self) -> str:
        guard = " (under TYPE_CHECKING)" if self.type_checking else ""
        return f"{self.file}:{self.line} imports {self.module}: `{self.statement}`{guard}"


def module_name(path: Path, src: Path = SRC) -> str:
    """``src/outreach/channels/__init__.py`` -> ``outreach.channels``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str, src: Path = SRC) -> bool:
    """Whether ``name`` is a module or package of ours (a file under ``src``)."""
    path = src.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, path: Path, source: str, name: str, src: Path) -> None:
        self.file = path.relative_to(src.parent).as_posix()
        self.source = source
        self.src = src
        # The package a relative import starts from.
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.type_checking = False
        self.found: list[Import] = []

    def _add(self, node: ast.stmt, module: str) -> None:
        statement = " ".join((ast.get_source_segment(self.source, node) or "").split())
        self.found.append(Import(self.file, node.lineno, module, statement, self.type_checking))

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        outer, self.type_checking = self.type_checking, True
        for child in node.body:
            self.visit(child)
        self.type_checking = outer
        for child in node.orelse:  # the ``else:`` of ``if TYPE_CHECKING`` runs
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(node, submodule if is_module(submodule, self.src) else base)


def imports_in(path: Path, *, source: str | None = None, src: Path = SRC) -> list[Import]:
    """Every import in the file at ``path`` (``source`` instead of its text, for tests)."""
    text = path.read_text(encoding="utf-8") if source is None else source
    collector = _Collector(path, text, module_name(path, src), src)
    collector.visit(ast.parse(text, filename=str(path)))
    return collector.found


def run_time(imports: Iterable[Import]) -> Iterator[Import]:
    return (i for i in imports if not i.type_checking)


def within(module: str, layers: Iterable[str]) -> bool:
    """Whether ``module`` is one of ``layers`` or inside one of them."""
    return any(module == layer or module.startswith(f"{layer}.") for layer in layers)


def files_of(*packages: str) -> list[Path]:
    files = sorted(f for p in packages for f in PACKAGE.joinpath(p).rglob("*.py"))
    assert files, packages
    return files


def report(offending: Iterable[Import], rule: str) -> str:
    return f"{rule}:\n" + "\n".join(f"  {i}" for i in offending)


def test_the_engine_imports_models_durations_and_the_standard_library_only() -> None:
    offending = [
        i
        for i in run_time(imports_in(PACKAGE / "_engine.py"))
        if not within(i.module, ENGINE_MAY_IMPORT)
        and i.module.partition(".")[0] not in sys.stdlib_module_names
    ]
    assert not offending, report(
        offending, "the engine is pure: outreach._models, outreach._durations and the stdlib only"
    )


def test_the_zones_import_models_phonenumbers_and_the_standard_library_only() -> None:
    offending = [
        i
        for i in run_time(imports_in(PACKAGE / "_zones.py"))
        if not within(i.module, ZONES_MAY_IMPORT)
        and i.module.partition(".")[0] not in sys.stdlib_module_names
    ]
    assert not offending, report(
        offending, "the engine's zones are pure: outreach._models, phonenumbers and the stdlib"
    )


@pytest.mark.parametrize(
    "path", files_of("channels", "stores"), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_channels_and_stores_do_not_import_the_layers_above_them(path: Path) -> None:
    offending = [
        i
        for i in run_time(imports_in(path))
        if within(i.module, ABOVE_CHANNELS_AND_STORES) or i.module == "outreach"
    ]
    assert not offending, report(
        offending,
        "channels and stores sit below the runner, the client, the webhooks and the CLI "
        "(and the package root, which re-exports the client)",
    )


def test_the_models_import_no_io_layer() -> None:
    offending = [
        i
        for i in run_time(imports_in(PACKAGE / "_models.py"))
        if within(i.module, IO_LAYERS) or i.module == "outreach"
    ]
    assert not offending, report(
        offending, "the records are plain data: no channel, store, runner, client or webhooks"
    )


# --- the scanner itself: a rule that sees nothing would pass for ever -----------------------


def test_the_scanner_sees_every_form_of_import(tmp_path: Path) -> None:
    package = tmp_path / "outreach" / "stores"
    package.mkdir(parents=True)
    for name in ("__init__.py", "_codec.py", "sqlite.py"):
        (package / name).touch()
    (tmp_path / "outreach" / "__init__.py").touch()
    (tmp_path / "outreach" / "_runner.py").touch()
    source = (
        "from __future__ import annotations\n"
        "import json, outreach._runner as runner\n"
        "from typing import TYPE_CHECKING\n"
        "from . import _codec\n"
        "from .. import _runner\n"
        "from ..exceptions import StoreError\n"
        "from outreach import AsyncClient\n"
        "if TYPE_CHECKING:\n"
        "    from outreach._client import AsyncClient\n"
        "else:\n"
        "    import outreach.cli\n"
        "def later():\n"
        "    from outreach._webhooks import app\n"
    )
    found = imports_in(package / "sqlite.py", source=source, src=tmp_path)
    assert [(i.line, i.module, i.type_checking) for i in found] == [
        (1, "__future__", False),
        (2, "json", False),
        (2, "outreach._runner", False),
        (3, "typing", False),
        (4, "outreach.stores._codec", False),
        (5, "outreach._runner", False),
        (6, "outreach.exceptions", False),
        (7, "outreach", False),
        (9, "outreach._client", True),
        (11, "outreach.cli", False),
        (13, "outreach._webhooks", False),
    ]
    message = report([found[-1]], "rule")
    assert "outreach/stores/sqlite.py:13 imports outreach._webhooks" in message
    assert "`from outreach._webhooks import app`" in message
