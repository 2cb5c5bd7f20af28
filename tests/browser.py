"""A real headless Chromium (Debian's) driven by Playwright, for page tests."""

import os
import shutil
from contextlib import contextmanager

CHROMIUM = os.environ.get("FAIRNAD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]  # fmt: skip


@contextmanager
def page_for(path):
    """Open a local HTML file; yields (page, problems) where problems collects console errors and page errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            problems = []
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: problems.append(f"network request: {r.url}") if not r.url.startswith(("file:", "data:", "about:")) else None)
            page.goto(f"file://{os.path.abspath(path)}")
            page.wait_for_load_state("load")
            yield page, problems
        finally:
            browser.close()
