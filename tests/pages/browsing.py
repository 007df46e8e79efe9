"""What the browser tests share, so that every journey holds its pages to one bar: a browser context that may
reach only the site under test (and records what else it tried, its console errors and the CSP's
complaints), axe-core's serious findings, the sideways-scrolling check, one page's full check, and the
screenshots in test-artifacts/ (git-ignored)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.servers import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
VISITOR_ZONE = "Europe/Berlin"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MAX_PAGE_BYTES = 150_000
# Run before any script of a page: the CSP's refusals, which the console alone would not tell apart.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""
# How many pixels the page is wider than the window: above 0, it scrolls sideways.
SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@dataclass
class Watched:
    """A browser context that may reach only the site; what else it tried is recorded."""

    context: BrowserContext
    elsewhere: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def page(self) -> Page:
        page = self.context.new_page()
        page.on(
            "console", lambda message: self.errors.append(message.text) if message.type == "error" else None
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page


def watched_context(browser: Browser, base_url: str, **options: Any) -> Watched:
    """A context in the visitor's zone and locale (unless `options` say otherwise) that reaches only
    `base_url`: any other request is refused and recorded, and each page watches its CSP."""
    watched = Watched(browser.new_context(**{"timezone_id": VISITOR_ZONE, "locale": "en-GB", **options}))
    watched.context.add_init_script(CSP_WATCH)

    def _only_the_site(route: Any) -> None:
        url = route.request.url
        if url.startswith(base_url + "/"):
            route.continue_()
        else:
            watched.elsewhere.append(url)
            route.abort()

    watched.context.route("**/*", _only_the_site)
    return watched


def sign_in(page: Page, email: str, password: str) -> None:
    """Through the sign-in form the page shows."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now; the minor ones are not failures."""
    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in violations
        if v["impact"] in {"serious", "critical"}
    ]


def scrolls_sideways(page: Page, name: str) -> list[str]:
    """The problem, if the page (at a phone's width) is wider than the window."""
    overflow = page.evaluate(SIDEWAYS)
    return [f"{name}: scrolls sideways by {overflow}px on a phone"] if overflow > 0 else []


def photograph(page: Page, name: str) -> None:
    """A full-page screenshot, test-artifacts/`name`.png, for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def check_page(page: Page, url: str, name: str, width: str) -> list[str]:
    """Open one page: the problems axe, the CSP or the size find; a full-page screenshot either way."""
    response = page.goto(url)
    assert response is not None
    problems = [f"{name}: {problem}" for problem in serious_violations(page)]
    weight = len(response.body()) + sum(
        len(page.request.get(asset).body())
        for asset in page.evaluate(
            "[...document.querySelectorAll('link[rel=stylesheet], script[src]')].map(e => e.href || e.src)"
        )
    )
    if weight > MAX_PAGE_BYTES:
        problems.append(f"{name}: {weight} bytes")
    if width == "phone":
        problems += scrolls_sideways(page, name)
    problems += [f"{name}: CSP {v}" for v in page.evaluate("window.__cspViolations")]
    photograph(page, f"{name}-{width}")
    return problems
