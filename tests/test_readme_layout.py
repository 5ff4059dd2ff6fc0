"""README's layout section is a tree with one line per module: every module of the package and
every bundled suite is listed under its folder, and nothing listed is gone."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tree() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Layout"):]
    return re.search(r"```\n(.*?)\n```", section, re.S).group(1).splitlines()


def _listed() -> set[str]:
    """Paths named by the tree, from its indentation (two spaces a level)."""
    stack: list[str] = []
    found = set()
    for line in _tree():
        if not line.strip() or not line.lstrip()[0].isalnum() and not line.lstrip().startswith("_"):
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        if name.endswith(":"):
            continue
        stack[depth:] = [name.rstrip("/")]
        found.add("/".join(stack))
    return found


def _modules() -> set[str]:
    package = REPO / "pytest_cryobench"
    mods = {f"pytest_cryobench/{p.relative_to(package)}" for p in package.rglob("*.py")
            if p.name != "__init__.py" and "__pycache__" not in p.parts}
    suites = {f"bench_suites/{p.name}" for p in (REPO / "bench_suites").glob("bench_*.py")}
    return mods | suites


def test_every_module_has_its_line():
    assert sorted(_modules() - _listed()) == []


def test_nothing_listed_is_gone():
    listed = {p for p in _listed() if p.endswith(".py")}
    assert sorted(listed - _modules()) == []
