"""Screenshots of every page of the browser UI into docs/ui/, taken from this version.

Trains a model in-process on a generated company, serves it on loopback, signs in with a
`read` key in headless Chromium (Debian's /usr/bin/chromium) and saves one PNG per page.

    PYTHONPATH=$PWD python bench/ui_screenshots.py [--customers 1500]
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
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_home(Path(tmp) / "home", customers=args.customers, months=14)
        with serving(trained) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/ui/sign-in")
            page.screenshot(path=str(args.out / "sign-in.png"))
            sign_in(page, url)
            for name, path in pages(trained):
                page.goto(url + path)
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=True)
                print(f"{name}: {path} -> {args.out / (name + '.png')}")


if __name__ == "__main__":
    main()
