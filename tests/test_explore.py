"""lab-cnn explore: the functions behind the page, the command's one-line refusals, the real server over HTTP
(gradio_client) and the page in a real browser (Debian's chromium, driven by Selenium), which draws a digit."""

from __future__ import annotations

import csv
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from html import escape
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from PIL import Image, ImageDraw

from lab_cnn.explore.analysis import ExploredNet, NoDigit, explain, explained_html, sketch_pixels, upload_pixels
from lab_cnn.explore.page import Explorer
from lab_cnn.mnist import load_split
from tests.helpers import CONFIGS, DATA_DIR, QUIET, fit_args, run, run_in_process

CONV1 = "conv1: floor((28 + 2*0 - 5) / 1) + 1 = 24 -> 24x24x10"
POOL2 = "pool2: floor((8 + 2*0 - 2) / 2) + 1 = 4 -> 4x4x20"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A baseline trained for 150 batches (about 85% right): its checkpoint, in a run folder of a fresh folder."""
    cwd = tmp_path_factory.mktemp("explore")
    args = fit_args("baseline.yaml", "--trainer.max_epochs=1", "--trainer.limit_train_batches=150", "--inspect=false")
    assert run(*args, "--trainer.enable_progress_bar=false", cwd=cwd).returncode == 0
    return cwd / "lightning_logs/baseline/version_0/checkpoints/last.ckpt"


@pytest.fixture(scope="module")
def net(trained) -> ExploredNet:
    import lab_cnn

    return ExploredNet("baseline", lab_cnn.load(trained), "standard")


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    return load_split(DATA_DIR, train=False)


def drawn_seven(size: int = 280) -> np.ndarray:
    """A sketchpad's composite: a black 7 on a transparent RGBA canvas, as Gradio sends it."""
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=22)
    return np.asarray(canvas)


def test_explain_is_the_nets_own_forward_pass_layer_by_layer(net, test_set) -> None:
    images, labels = test_set
    pixels = images[0, 0].numpy()
    explained = explain(net, pixels)
    x = (images[:1].float() / 255 - 0.1307) / 0.3081
    with torch.no_grad():
        expected = net.model(x).exp()[0]
    assert np.allclose(explained.probabilities, expected.tolist(), atol=1e-6)
    assert [layer.name for layer in explained.layers] == [name for name, _ in net.model.net.layers.named_children()]
    captions = [layer.caption for layer in explained.layers]
    assert CONV1 in captions and POOL2 in captions and "fc1: 50" in captions and "flatten: 320" in captions
    assert explained.saliency.shape == (28, 28) and explained.saliency.max() > 0
    # the saliency lies on the digit's strokes more than on the empty border
    ink = pixels > 0
    assert explained.saliency[ink].mean() > 3 * explained.saliency[~ink].mean()
    html = explained_html(net, explained)
    assert html.count("<img") == len(explained.layers) + 1 + 2  # every layer, the saliency, two convs' kernels
    assert escape(CONV1) in html and "conv2 kernels: 20 of 5x5x10" in html


def test_the_keras_port_is_explained_in_eval_mode_batchnorm_and_dropout_included(test_set) -> None:
    from keras_parity import KerasNet

    model = KerasNet().eval()
    net = ExploredNet("port", model, "unit")
    pixels = test_set[0][7, 0].numpy()
    first, second = explain(net, pixels), explain(net, pixels)
    assert first.probabilities == second.probabilities  # no dropout at work
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels).float()[None, None] / 255).exp()[0]
    assert np.allclose(first.probabilities, expected.tolist(), atol=1e-6)
    captions = [layer.caption for layer in first.layers]
    assert "conv2d: floor((28 + 2*0 - 3) / 1) + 1 = 26 -> 26x26x64" in captions
    assert "batch_normalization_4: 128" in captions and captions[-1] == "dense_3: 10"


def test_a_keras_model_file_is_explored_through_to_torch_with_keras_own_probabilities(test_set, tmp_path) -> None:
    """A .keras model as keras-parity saves it (its BatchNorm statistics moved off their defaults): the page's
    probabilities are the Keras model's own predict of the same image."""
    from keras_parity import build_model
    from lab_cnn.explore import keras_net

    model = build_model(conv_layers=1, dense_layers=1)
    pixels = test_set[0][:64, 0].numpy()
    model(pixels[..., None] / 255.0, training=True)  # one batch in training mode: moving statistics change
    model.save(tmp_path / "one_conv.keras")
    net = keras_net(str(tmp_path / "one_conv.keras"))
    assert net.label == "one_conv.keras" and net.normalize == "unit"
    explained = explain(net, pixels[0])
    expected = model.predict(pixels[:1, ..., None] / 255.0, verbose=0)[0]
    assert np.allclose(explained.probabilities, expected, atol=1e-4)
    assert explained.layers[0].caption == "conv2d: floor((28 + 2*0 - 3) / 1) + 1 = 26 -> 26x26x64"


def test_a_drawing_is_prepared_as_predict_prepares_a_photo() -> None:
    pixels, warning = sketch_pixels({"composite": drawn_seven()})
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8 and warning is None
    assert pixels.max() == 255 and pixels[:4].max() == 0  # light ink on black, a border as MNIST has
    for empty in (None, {"composite": None}, {"composite": np.zeros((280, 280, 4), np.uint8)}):
        with pytest.raises(NoDigit, match="canvas"):
            sketch_pixels(empty)


def decompression_bomb(path: Path, side: int = 20_000) -> Path:
    """A PNG that says it is side x side pixels (400 million): a few bytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (side + 1))  # one row; PIL refuses before it reads any
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_uploads_that_are_no_digit_are_refused_in_a_message(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(NoDigit, match=r"^notes.txt: not a digit image lab-cnn can read \(cannot identify image file"):
        upload_pixels(tmp_path / "notes.txt")
    with pytest.raises(NoDigit, match=r"bomb.png: .*decompression bomb"):
        upload_pixels(decompression_bomb(tmp_path / "bomb.png"))
    Image.new("L", (200, 200), 255).save(tmp_path / "white.png")
    with pytest.raises(NoDigit, match="white.png: .*no digit found"):
        upload_pixels(tmp_path / "white.png")
    with pytest.raises(NoDigit, match="Upload"):
        upload_pixels(None)


def test_the_page_events_show_a_message_for_bad_input_and_find_misclassified_digits(net, test_set) -> None:
    explorer = Explorer([net], *test_set)
    for index in (None, -1, 10_000, 2.5):
        status, seen, label, html = explorer.test_image(index)
        assert "from 0 to 9999" in status and seen is None and label is None and html == ""
    status, seen, label, html = explorer.test_image(0)
    assert status == "test image 0: a 7" and seen.shape == (168, 168) and escape(CONV1) in html
    index, status, *_ = explorer.misclassified()
    images, labels = test_set
    assert f"test image {index}: a {int(labels[index])}" == status
    assert explain(net, images[index, 0].numpy()).predicted != int(labels[index])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give a net to explore: --ckpt_path"),
        (["--ckpt_path", "last"], "--ckpt_path last: the newest checkpoint of which runs? give the config too"),
        (["--compare-ckpt", "last"], "--compare-ckpt last: the newest checkpoint of which runs?"),
        (["--ckpt_path", ""], "--ckpt_path: '' is not allowed"),
        (["--keras-model", str(CONFIGS / "baseline.yaml")], "baseline.yaml is not a .keras model (the zip archive"),
        (["--config", "configs/baseline.yaml"], "--config: give the checkpoint it goes with, --ckpt_path"),
        (["--ckpt_path", "missing.ckpt"], "--ckpt_path: missing.ckpt does not exist"),
        (["--keras-model", "missing.keras"], "--keras-model: missing.keras does not exist"),
        (["--ckpt_path", "x.ckpt", "--port", "http"], "argument --port: 'http' is not allowed; use a port from 1"),
        (["--ckpt_path", "x.ckpt", "--port", "70000"], "'70000' is not allowed"),
        (["--ckpt_path", "x.ckpt", "--port", "²"], "'²' is not allowed; use a port from 1"),  # a traceback before
        (["--ckpt_path", "x.ckpt", "--port", "07000"], "'07000' is not allowed; YAML, which reads lab-cnn's configs"),
        (["--ckpt_pth", "x.ckpt"], "unrecognized arguments: --ckpt_pth"),
    ],
)
def test_command_mistakes_are_one_line(args: list[str], expected: str, tmp_path) -> None:
    result = run_in_process("explore", *args, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr and len(result.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_checkpoint_that_does_not_fit_its_config_and_a_port_in_use_are_one_line(trained, tmp_path) -> None:
    fc25 = str(Path(__file__).parents[1] / "configs/fc25.yaml")
    result = run_in_process("explore", "--ckpt_path", str(trained), "--config", fc25, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "does not fit this model: net.layers.fc1.weight" in result.stderr
    avgpool = str(Path(__file__).parents[1] / "configs/avgpool.yaml")  # every weight fits; the pooling differs
    result = run_in_process("explore", "--ckpt_path", str(trained), "--config", avgpool, cwd=tmp_path)
    assert result.returncode == 2 and "pool" in result.stderr and len(result.stderr.splitlines()) == 1
    with __import__("socket").socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_in_process("explore", "--ckpt_path", str(trained), "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2 and f"--port {port}: in use on 127.0.0.1" in result.stderr
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def server(trained):
    """``lab-cnn explore`` of the trained checkpoint beside itself, as a user starts it, in the run's folder;
    its URL and process. Stopped with Ctrl-C (SIGINT) at the end, which it must survive to exit 0."""
    cwd = trained.parents[4]
    uploads = set(Path("/tmp").glob("lab-cnn-explore-*"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab_cnn",
            "explore",
            "--ckpt_path",
            str(trained),
            "--compare-ckpt",
            str(trained),
            "--data-dir",
            str(DATA_DIR),
        ],  # fmt: skip
        cwd=cwd,
        env={**QUIET, "GRADIO_ANALYTICS_ENABLED": "True"},  # the command turns it off itself
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line + process.stdout.read()
    before = sorted(p.relative_to(cwd) for p in cwd.rglob("*"))
    yield url.group(), process, cwd, before
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert set(Path("/tmp").glob("lab-cnn-explore-*")) == uploads  # its upload folder is gone with it


def test_the_server_answers_over_http_as_lab_cnn_predict_does_and_listens_on_loopback_only(
    server, trained, tmp_path
) -> None:
    from gradio_client import Client, handle_file

    url, process, cwd, before = server
    digit = tmp_path / "seven.png"
    Image.fromarray(drawn_seven()).save(digit)
    client = Client(url, verbose=False)
    status, _, first, html, second, _ = client.predict(handle_file(str(digit)), api_name="/upload")
    assert status.startswith("your image, as the net sees it") and escape(CONV1) in html
    assert first == second  # the same checkpoint side by side
    # a file that is no image: a message on the page, and the server goes on
    (tmp_path / "notes.txt").write_text("hello")
    status, *_ = client.predict(handle_file(str(tmp_path / "notes.txt")), api_name="/upload")
    assert "notes.txt: not a digit image" in status
    status, *_ = client.predict(3, api_name="/test_image")
    assert status == "test image 3: a 0"
    sockets = [c for p in (psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True))
               for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]  # fmt: skip
    assert sockets and all(c.laddr.ip == "127.0.0.1" for c in sockets)
    assert sorted(p.relative_to(cwd) for p in cwd.rglob("*")) == before  # the server wrote nothing of its own
    (tmp_path / "notes.txt").unlink()
    predicted = run(
        "predict", "--ckpt_path", str(trained), "--config", str(Path(__file__).parents[1] / "configs/baseline.yaml"),
        "--data.data_dir", str(DATA_DIR), "--data.predict_path", str(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    [row] = csv.DictReader(open(trained.parents[1] / f"predictions-{tmp_path.name}.csv"))
    assert first["label"] == row["digit"]
    assert abs(first["confidences"][0]["confidence"] - float(row["probability"])) < 1e-4


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"  # Debian's, installed by make test (Makefile: browser)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def test_a_digit_drawn_with_the_mouse_in_chromium_shows_its_prediction_and_every_layer(server, tmp_path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, *_ = server
    driver = browser()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#sketch button[aria-label='Brush']"))
        driver.find_element(By.CSS_SELECTOR, "#sketch button[aria-label='Brush']").click()
        canvas = driver.find_elements(By.CSS_SELECTOR, "#sketch canvas")[-1]
        width, height = canvas.size["width"], canvas.size["height"]
        stroke = ActionChains(driver).move_to_element_with_offset(canvas, -width // 6, -height // 3).click_and_hold()
        for _ in range(10):  # the 7's bar, then its stem down to the left
            stroke.move_by_offset(width // 30, 0)
        for _ in range(12):
            stroke.move_by_offset(-width // 80, height // 20)
        stroke.release().perform()
        wait.until(lambda d: "your drawing" in d.find_element(By.ID, "status").text)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#layers1 figure")) >= 13)
        captions = [f.text for f in driver.find_elements(By.CSS_SELECTOR, "#layers0 figcaption")]
        assert CONV1 in captions and POOL2 in captions and "fc1: 50" in captions
        label, predicted, *bars = driver.find_element(By.ID, "p0").text.splitlines()  # the digit, then 10 bars
        assert label.endswith("probabilities") and predicted in list("0123456789")
        assert len([b for b in bars if b.endswith("%")]) == 10
        images = driver.find_elements(By.CSS_SELECTOR, "#layers0 img")
        assert all(driver.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
        seen = driver.find_element(By.CSS_SELECTOR, "#seen img")
        assert driver.execute_script("return arguments[0].naturalWidth", seen) == 168
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(height + 200, 6000))
        shot = tmp_path / "explore.png"
        driver.save_screenshot(str(shot))
        assert Image.open(shot).size[1] > 1000
        if os.environ.get("LAB_CNN_SCREENSHOT"):  # docs/explore.png is made this way (docs/explore.md)
            Path(os.environ["LAB_CNN_SCREENSHOT"]).write_bytes(shot.read_bytes())
    finally:
        driver.quit()


@pytest.mark.long  # a server started, used, stopped, and a second one on its port (47 s in the suite)
def test_stopped_by_sigterm_the_server_removes_its_uploads_and_a_stale_port_is_free_again(trained, tmp_path) -> None:
    """SIGTERM (a service manager, a closed terminal's SIGHUP alike) stops it as Ctrl-C does; its port, with a
    connection of the stopped server still closing, is free for the next one (uvicorn binds with SO_REUSEADDR)."""
    from gradio_client import Client, handle_file

    def start(port: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "lab_cnn", "explore", "--ckpt-path", str(trained), "--port", str(port),
             "--data-dir", str(DATA_DIR)],  # fmt: skip
            cwd=tmp_path, env=QUIET, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = set(Path("/tmp").glob("lab-cnn-explore-*"))
    process = start(port)
    assert f"http://127.0.0.1:{port}/" in process.stdout.readline()
    Image.fromarray(drawn_seven()).save(tmp_path / "seven.png")
    Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
        handle_file(str(tmp_path / "seven.png")), api_name="/upload"
    )
    assert set(Path("/tmp").glob("lab-cnn-explore-*")) - before  # the upload is in the server's folder
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert set(Path("/tmp").glob("lab-cnn-explore-*")) == before
    again = start(port)
    try:
        assert f"http://127.0.0.1:{port}/" in again.stdout.readline()
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=60)
