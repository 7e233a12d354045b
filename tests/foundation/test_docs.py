"""The user-facing docs hold together: the README stays short, every relative link (and
#anchor) in the README and the docs index pages resolves, and every measured result the
README quotes links to its page under docs/results/ (which gives date, commit, command)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "docs" / "README.md", ROOT / "docs" / "design-log.md",
         *sorted((ROOT / "docs" / "results").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", path.read_text(), re.M)}


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) < 12_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f"{page.name}: {broken}"


def test_every_measured_result_in_the_readme_links_its_page() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Measured results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| what") and "---" not in line]
    assert len(rows) >= 5
    for row in rows:
        assert "](docs/results/" in row, row
    for page in sorted((ROOT / "docs" / "results").glob("*.md")):
        if page.name != "README.md":
            head = page.read_text()[:800]
            assert re.search(r"20\d\d-\d\d-\d\d", head) and re.search(r"`[0-9a-f]{7}`", head), page.name
            assert "Reproduce" in head or "reproduce" in head, page.name
