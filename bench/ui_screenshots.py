"""Screenshots of every page of the browser UI into docs/ui/, taken from this version.

Trains a model in-process on a generated company, serves it on loopback, signs in with a
key with the `read`, `score` and `discover` scopes in headless Chromium (Debian's /usr/bin/chromium) and
saves one PNG per page, then one of a finished discovery job (a quick one: few candidates).

    PYTHONPATH=$PWD python bench/ui_screenshots.py [--customers 1500] [--only discover ...]

With ``--url URL --key KEY`` it shoots pages of a service already running instead (for example
``segments serve`` on a data home with a champion and a compared challenger, for the Compare page):

    PYTHONPATH=$PWD python bench/ui_screenshots.py --url http://127.0.0.1:8000 --key K --only compare
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from ui_support import chromium, serving, sign_in, train_home  # noqa: E402

OUT = REPO / "docs" / "ui"


def pages(trained) -> list[tuple[str, str]]:
    from models.summaries import segment_ids

    ids = segment_ids(trained.model)
    biggest = max(range(len(ids)), key=lambda p: trained.model.profiles[p].size)
    example = trained.model.profiles[biggest].example_customers[0]
    return [
        ("segments", "/ui"),
        ("segment", f"/ui/segments/{ids[biggest]}"),
        ("customer", f"/ui/customers/{example}"),
        ("map", "/ui/map"),
        ("compare", "/ui/compare"),
        ("discover", "/ui/discover"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", action="append", help="Only these pages (e.g. discover).")
    parser.add_argument("--url", help="Shoot a running service (with --key) instead.")
    parser.add_argument("--key", help="An API key with the read and score scopes, for --url.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.url:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, args.url, args.key)
            for name in args.only or ["compare"]:
                shoot(page, f"{args.url}/ui/{name}", args.out / f"{name}.png")
        return
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_home(Path(tmp) / "home", customers=args.customers, months=14)
        with serving(trained, discovery_quick=True) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            wanted = set(args.only or [n for n, _ in pages(trained)] + ["sign-in", "discovery"])
            page.goto(url + "/ui/sign-in")
            if "sign-in" in wanted:
                page.screenshot(path=str(args.out / "sign-in.png"))
            sign_in(page, url, "team-key")
            for name, path in pages(trained):
                if name in wanted:
                    shoot(page, url + path, args.out / f"{name}.png")
            if "discovery" in wanted:
                shoot(page, finished_discovery(page, url), args.out / "discovery.png")


def shoot(page, address: str, path: Path) -> None:
    page.goto(address)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    print(f"{address} -> {path}")


def finished_discovery(page, url: str) -> str:
    """Submit the Discover form (active customers on an annual plan) and wait for the result."""
    page.goto(url + "/ui/discover")
    page.fill("#as_of", "2026-06-30")
    page.fill("#filter_interval", "year")
    page.fill("#max_segments", "4")
    page.click("#discover-form button[type=submit]")
    page.wait_for_url("**/ui/discover/*")
    page.wait_for_selector("#discovery[data-status=succeeded]", timeout=900_000)
    return page.url


if __name__ == "__main__":
    main()
