"""Screenshots of the studio's pages for the README, made the way the browser tests drive them.

    python scripts/studio_screenshots.py [--out docs/studio] [--width 1366 --height 860] [--scheme dark]

Opens `medtune studio` on the tiny demo in a fresh folder (a quick run: two training steps, a few test answers),
then with Debian's Chromium through Playwright: the Data page with its redactions, the Run page after the run,
the Report and a Compare answer. PNGs are reduced to 256 colours to stay small.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from finetune.serve import BackgroundServer
from finetune.studio import Studio, create_app

QUICK = ["model.load_in_4bit=false", "train.per_device_train_batch_size=1", "train.logging_steps=1",
         "data.split.validation=0.03", "export.enabled=false", "eval.tuned=adapter", "eval.max_examples=12",
         "eval.max_new_tokens=12"]


def save(png: bytes, path: Path) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KiB")


def shoot(url: str, out: Path, chromium: str, width: int, height: int, scheme: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
        page.goto(f"{url}/data")
        page.locator("section.record pre.note mark.pii").first.wait_for()
        page.evaluate("window.scrollTo(0, 0)")
        save(page.screenshot(), out / "data.png")

        page.goto(f"{url}/run")
        page.select_option("#run-verb", "run")
        page.fill("#run-overrides", "train.max_steps=6")
        page.click("#run-start")
        page.wait_for_selector("#detail-status.s-finished, #detail-status.s-failed", timeout=600_000)
        save(page.screenshot(), out / "run.png")

        page.goto(f"{url}/report")
        page.locator("section.lang").first.wait_for()
        save(page.screenshot(), out / "report.png")

        page.goto(f"{url}/compare")
        page.fill("#compare-prompt", "Объясните пациенту: гемоглобин 162 г/л, это много?")
        page.click("#compare-ask")
        page.wait_for_function("document.getElementById('finish-tuned').textContent.includes('tokens')",
                               timeout=300_000)
        save(page.screenshot(), out / "compare.png")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/studio"))
    parser.add_argument("--width", type=int, default=1366)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--scheme", choices=["dark", "light"], default="dark")
    parser.add_argument("--base", type=Path, default=None, help="a tiny base model built earlier, copied instead of "
                        "building one")
    args = parser.parse_args()
    chromium = next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)
    if chromium is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "tiny-demo"
        studio = Studio.open(None, [f"output_dir={root}", f"model.base={root / 'base-model'}", *QUICK], None, None)
        if args.base is not None:
            shutil.copytree(args.base, studio.recipe.model.base)
        with BackgroundServer(create_app(studio)) as server:
            shoot(server.base_url, args.out, chromium, args.width, args.height, args.scheme)
        studio.comparer.close()


if __name__ == "__main__":
    main()
