"""explore.html as a student meets it: opened from a file in a real browser (headless Chromium), sliders moved
through the page's DOM, the answer it shows equal to catbrain-predict's, nothing fetched, a picture that is not
blank."""

from __future__ import annotations

import io
import json
import os
import re
import shutil

import pytest
import torch

from catbrain.commands.train import train
from catbrain.run import explore
from tests.conftest import compose_config, predict_in_process

SMALL = ["data.n_train=400", "data.n_val=100", "data.n_test=400", "trainer.max_epochs=2"]
QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]
HOSTILE = '</script><script>document.body.dataset.pwned = "yes"</script><img src=x onerror=alert(1)>'


def chromium() -> str | None:
    return os.environ.get("CATBRAIN_CHROMIUM") or next(
        (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A thresholded cat brain (2 features; its name hostile HTML) and a weather regressor (5 features)."""
    found = {}
    for experiment, extra in [("cat_threat", [f"name={json.dumps(HOSTILE)}"]), ("weather_3pm", [])]:
        run_dir = tmp_path_factory.mktemp(experiment)
        train(compose_config([f"experiment={experiment}", *QUIET, *SMALL, *extra], run_dir))
        found[experiment] = run_dir
    return found


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests drive Chromium with playwright")
    executable = chromium()
    if executable is None:
        if os.environ.get("CI") == "true":  # CI installs it: a browser test that skips there proves nothing
            pytest.fail("no Chromium: .ci/run installs Debian's chromium")
        pytest.skip("no Chromium here (apt-get install chromium, or set CATBRAIN_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


class Page:
    """explore.html open in the browser, every request and script error recorded."""

    def __init__(self, browser, path) -> None:
        self.page = browser.new_page(viewport={"width": 1100, "height": 720})
        self.requests, self.errors = [], []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda dialog: (self.errors.append("dialog: " + dialog.message), dialog.dismiss()))
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready=true]", timeout=15_000)

    def set_sliders(self, values: list[float | None]) -> list[float]:
        """Move each slider as a hand does (its value, then an input event); the values the sliders took."""
        return self.page.evaluate(
            """(values) => values.map((value, i) => {
                 const slider = document.getElementById("feature-" + i);
                 if (value === null) return Number(document.getElementById("value-" + i).value);  // left as it is
                 slider.value = value;
                 slider.dispatchEvent(new Event("input", {bubbles: true}));
                 return Number(slider.value);
               })""",
            values,
        )

    def shown(self) -> dict:
        return self.page.evaluate(
            """() => ({decision: document.getElementById("decision").dataset.value,
                      text: document.getElementById("decision").textContent,
                      score: document.getElementById("score").dataset.value,
                      outside: document.getElementById("outside").textContent})"""
        )


def predicted(checkpoint, rows, capsys) -> list[dict]:
    code, out, err = predict_in_process(str(checkpoint), [f"input={json.dumps(rows)}", "format=json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_every_run_of_two_features_writes_a_self_contained_page(runs):
    for run_dir in runs.values():
        page = (run_dir / "explore.html").read_text()
        assert not re.search(
            r"""<(script|img|link|iframe)[^>]+(src|href)=|url\(|@import|https?://(?!www\.w3\.org)""",
            page.replace(HOSTILE.replace("<", "\\u003c").replace(">", "\\u003e"), ""),
        ), run_dir
        assert "default-src 'none'" in page  # the browser itself refuses to fetch anything
    data = explore_data(runs["cat_threat"])
    assert data["plane"]["teacher_lines"] and len(data["plane"]["dots"][0]) == 400
    assert "scatter" in explore_data(runs["weather_3pm"])


def explore_data(run_dir) -> dict:
    page = (run_dir / "explore.html").read_text()
    return json.loads(re.search(r'<script id="catbrain-data" type="application/json">(.*?)</script>', page, re.S)[1])


def test_the_page_shows_what_catbrain_predict_answers(browser, runs, capsys):
    run_dir = runs["cat_threat"]
    page = Page(browser, run_dir / "explore.html")
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    seen = set()
    for wanted in [[0.9, 0.8], [0.1, 0.2], [0.55, 0.6], [0.7, 0.45], [0.3, 0.85]]:
        row = page.set_sliders(wanted)
        assert row == pytest.approx(wanted, abs=1e-9)
        shown = page.shown()
        answer = predicted(checkpoint, [row], capsys)[0]
        assert shown["decision"] == answer["prediction"] == shown["text"], (row, shown, answer)
        assert float(shown["score"]) == pytest.approx(answer["score"], abs=1e-5)
        assert shown["outside"] == ""
        seen.add(shown["decision"])
    assert len(seen) >= 2  # the rows crossed a boundary
    page.set_sliders([1.04, 0.5])  # beyond the hardest object of the training data
    assert page.shown()["outside"].startswith("outside the training range: hardness")
    assert page.errors == [] and page.requests == [(run_dir / "explore.html").as_uri()]
    # the run's name is hostile HTML: shown as text, never run
    assert page.page.evaluate("document.body.dataset.pwned") is None
    assert page.page.inner_text("#title") == f"catbrain-train: {HOSTILE}"
    page.page.close()


def test_a_typed_value_is_answered_as_typed_and_a_bad_one_is_refused(browser, runs, capsys):
    run_dir = runs["cat_threat"]
    page = Page(browser, run_dir / "explore.html")
    page.page.fill("#value-0", "5")  # beyond the slider's range: answered for 5, not for the slider's end
    page.set_sliders([None, 0.3])  # moving the other slider keeps the typed value
    shown = page.shown()
    answer = predicted(run_dir / "checkpoints" / "best.ckpt", [[5.0, 0.3]], capsys)[0]
    assert float(shown["score"]) == pytest.approx(answer["score"], abs=1e-5)
    assert page.page.input_value("#value-0") == "5" and shown["outside"].startswith("outside the training range")
    for typed, words in [("", "hardness: enter a number"), ("1e39", "hardness: 1e39 is beyond the float32 range")]:
        page.page.fill("#value-0", typed)
        assert page.shown()["text"] == words and page.shown()["decision"] == ""
    assert page.errors == []
    page.page.close()


def test_the_page_is_a_picture_not_a_blank(browser, runs):
    from matplotlib.image import imread

    page = Page(browser, runs["cat_threat"] / "explore.html")
    image = imread(io.BytesIO(page.page.screenshot()), format="png")[..., :3]
    box = page.page.locator("#plane").bounding_box()
    plane = image[int(box["y"]) : int(box["y"] + box["height"]), int(box["x"]) : int(box["x"] + box["width"])]
    assert image.std() > 0.05 and plane.std() > 0.05
    colours = {tuple(pixel) for pixel in (plane.reshape(-1, 3) * 255).round().astype(int)[::7].tolist()}
    assert len(colours) > 20  # regions, boundaries and dots
    page.page.close()


def test_other_models_get_sliders_and_predicted_vs_true(browser, runs, capsys):
    run_dir = runs["weather_3pm"]
    page = Page(browser, run_dir / "explore.html")
    assert page.page.locator("#scatter circle").count() == 400
    data = explore_data(run_dir)
    row = data["scatter"]["rows"][7]
    page.page.locator("#scatter circle").nth(7).click()  # a test row, loaded into the sliders
    taken = page.page.evaluate("() => [0, 1, 2, 3, 4].map((i) => Number(document.getElementById('value-' + i).value))")
    assert taken == row  # the number boxes hold the row exactly; the answer is the model's for it
    answer = predicted(run_dir / "checkpoints" / "best.ckpt", [taken], capsys)[0]
    assert float(page.shown()["decision"]) == pytest.approx(answer["prediction"], rel=1e-5, abs=1e-4)
    assert page.errors == []
    page.page.close()


def test_a_model_the_page_cannot_compute_is_read_off_the_grid():
    from catbrain.predictor import Predictor
    from catbrain.predictor.heads import NumberHead

    class Doubled(torch.nn.Module):
        in_features, out_features = 2, 1

        def forward(self, x):
            return 2 * x.sum(-1)

    assert explore.program(Predictor(Doubled(), NumberHead(), ["a", "b"])) is None
