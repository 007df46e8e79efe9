"""What every page must have, read with the standard library's HTML parser: the head's metadata and the
basic accessibility rules the pages promise (language, one h1, headings in order, labelled controls)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

MAX_PAGE_BYTES = 100_000


@dataclass
class PageFacts:
    lang: str | None = None
    title: str = ""
    description: str | None = None
    canonical: str | None = None
    json_ld: list[str] = field(default_factory=list)
    headings: list[int] = field(default_factory=list)
    label_targets: set[str] = field(default_factory=set)
    control_ids: list[str | None] = field(default_factory=list)
    images_without_alt: int = 0


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.facts = PageFacts()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.facts.lang = a.get("lang")
        elif tag == "title":
            self._in = "title"
        elif tag == "meta" and a.get("name") == "description":
            self.facts.description = a.get("content")
        elif tag == "link" and a.get("rel") == "canonical":
            self.facts.canonical = a.get("href")
        elif tag == "script" and a.get("type") == "application/ld+json":
            self._in = "json_ld"
            self.facts.json_ld.append("")
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.facts.headings.append(int(tag[1]))
        elif tag == "label" and a.get("for"):
            self.facts.label_targets.add(a["for"] or "")
        elif tag in {"input", "select", "textarea"} and a.get("type") not in {"hidden", "submit"}:
            self.facts.control_ids.append(a.get("id"))
        elif tag == "img" and not a.get("alt") and a.get("alt") != "":
            self.facts.images_without_alt += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in {"title", "script"}:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "title":
            self.facts.title += data
        elif self._in == "json_ld":
            self.facts.json_ld[-1] += data


def read(html: str) -> PageFacts:
    reader = _Reader()
    reader.feed(html)
    return reader.facts


def assert_good_page(html: str, expected_canonical: str) -> dict[str, Any]:
    """Assert the promises every page keeps; return its parsed JSON-LD."""
    assert len(html.encode()) < MAX_PAGE_BYTES
    facts = read(html)
    assert facts.lang == "en"
    assert facts.title.strip()
    assert facts.description
    assert len(facts.description) >= 20
    assert facts.canonical == expected_canonical
    assert len(facts.json_ld) == 1
    structured = json.loads(facts.json_ld[0])
    assert structured["@context"] == "https://schema.org"
    assert facts.headings.count(1) == 1
    assert facts.headings[0] == 1
    for before, after in zip(facts.headings, facts.headings[1:], strict=False):
        assert after <= before + 1, f"heading level jumps from h{before} to h{after}"
    assert all(control and control in facts.label_targets for control in facts.control_ids), facts.control_ids
    assert facts.images_without_alt == 0
    return structured
