"""``lab-cnn explore``: a local web page (Gradio) that shows what one or two trained nets make of a digit you
draw, upload or pick from the test set: every layer's maps with its shape, the kernels, the probabilities and a
saliency map. The page is served on 127.0.0.1 only, with no share link and no analytics."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import socket
import tempfile
from pathlib import Path

from PIL import Image

from lab_cnn import mnist
from lab_cnn.errors import ArgumentParser, UserError, first_line
from lab_cnn.explore.analysis import ExploredNet
from lab_cnn.validators import number_text

HOST = "127.0.0.1"  # this machine only: the page has no login
MAX_UPLOAD = "20mb"  # a photo of a digit is far smaller
MAX_PIXELS = 32_000_000  # an image of more (a 5,600 x 5,600 photo) is refused
PORTS = "use a port from 1 to 65535"


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lab-cnn explore",
        description="Serve a page on 127.0.0.1 that shows every layer of a trained net at work on a digit you draw "
        "(or upload, or pick from the test set), beside a second net with --compare-ckpt. Ctrl-C stops it.",
    )
    parser.add_argument(
        "--ckpt_path", "--ckpt-path", help="a checkpoint of a run (or last, with --config: the newest of its runs)"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="the config it was trained with, as for lab-cnn test (default: the run's own config.yaml)",
    )
    parser.add_argument(
        "--compare-ckpt", "--compare_ckpt", help="a second checkpoint, shown beside the first on the same digit"
    )
    parser.add_argument("--compare-config", action="append", default=[], help="the second checkpoint's config")
    parser.add_argument("--keras-model", help="a .keras model of keras-parity, shown through keras_parity.to_torch")
    parser.add_argument("--port", type=port_number, default=None, help="the port (default: the first free from 7860)")
    parser.add_argument(
        "--data-dir", default="data", help="folder of MNIST/raw, for the test images; fetched if missing (default data)"
    )
    return parser


def tcp_port(key: str, value: object) -> int:
    """``value`` if it is a TCP port, 1-65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UserError(f"{key}: {value!r} is not allowed; {PORTS}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, read as every command reads a number."""
    return number_text(text, tcp_port, PORTS)


def explore_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    missing = [name for name in ("gradio", "captum") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"lab-cnn explore needs {' and '.join(missing)}: pip install 'lab-cnn[explore]'")
    if args.port is not None:
        check_free(args.port)
    nets = explored_nets(args)
    mnist.ensure(args.data_dir)
    images, labels = mnist.load_split(args.data_dir, train=False)
    serve(nets, images, labels, args.port)


def explored_nets(args: argparse.Namespace) -> list[ExploredNet]:
    """The nets to show, each checked as ``lab-cnn test`` checks a checkpoint; one line for what does not fit."""
    wanted = [
        (args.ckpt_path, args.config, "--ckpt_path", "--config"),
        (args.compare_ckpt, args.compare_config, "--compare-ckpt", "--compare-config"),
    ]
    for path, configs, key, config_key in wanted:
        if configs and path is None:
            raise UserError(f"{config_key}: give the checkpoint it goes with, {key}")
        if path == "last" and not configs:
            raise UserError(f"{key} last: the newest checkpoint of which runs? give the config too, {config_key}")
    nets = [checkpoint_net(path, configs, key) for path, configs, key, _ in wanted if path is not None]
    if args.keras_model is not None:
        nets.append(keras_net(args.keras_model))
    if not nets:
        raise UserError("give a net to explore: --ckpt_path (a run's checkpoint) or --keras-model (a .keras model)")
    if len(nets) > 2:
        raise UserError("two nets at most side by side: leave out --compare-ckpt or --keras-model")
    return nets


def checkpoint_net(path: str, configs: list[str], key: str) -> ExploredNet:
    """A run's checkpoint as ``lab-cnn test`` takes it, labelled with its run (``baseline/version_0``)."""
    from lab_cnn.api import checkpoint_file, model_and_data

    checkpoint = checkpoint_file(path, configs, key)  # ``last`` as the file it is
    model, data = model_and_data(checkpoint, configs or None, key=key)
    in_run = checkpoint.parent.name == "checkpoints" and len(checkpoint.parents) > 2
    label = f"{checkpoint.parents[2].name}/{checkpoint.parents[1].name}" if in_run else checkpoint.name
    return ExploredNet(label, model, data.normalize)


def keras_net(path: str) -> ExploredNet:
    from keras_parity import to_torch
    from keras_parity.cli import load

    model_path = Path(path)
    if not model_path.is_file():
        raise UserError(f"--keras-model: {path} {'is not a file' if model_path.exists() else 'does not exist'}")
    return ExploredNet(model_path.name, to_torch(load(model_path, key="--keras-model")), "unit")  # the Keras lab: x/255


def check_free(port: int) -> None:
    """The port, free for a server on HOST, checked as the server (uvicorn) will bind it: with SO_REUSEADDR, so a
    connection of the last server still closing (TIME_WAIT) does not count as in use."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except PermissionError:
            raise UserError(f"--port {port}: not allowed for this user (below 1024 needs root); use another") from None
        except OSError:
            raise UserError(f"--port {port}: in use on {HOST}; give another port, or leave --port out") from None


def stop(signum: int, _frame: object) -> None:
    """SIGTERM and SIGHUP stop the page as Ctrl-C does, so its upload folder is removed."""
    raise KeyboardInterrupt


def serve(nets: list[ExploredNet], images: object, labels: object, port: int | None) -> None:
    """The page, until Ctrl-C (or SIGTERM, SIGHUP). Gradio's uploads go to a folder of the server's own, removed
    when it stops; an upload is at most MAX_UPLOAD, an image at most MAX_PIXELS (Gradio decodes every image it is
    sent, a sketch's layers too, before the page sees them: a small PNG of a huge image would fill the memory)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # started in the background, a shell ignores it
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # PIL warns above it and refuses images of twice as many pixels
    with tempfile.TemporaryDirectory(prefix="lab-cnn-explore-") as uploads:
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no calls home
        os.environ["GRADIO_TEMP_DIR"] = uploads
        from lab_cnn.explore.page import Explorer, build_page

        page = build_page(Explorer(nets, images, labels))  # type: ignore[arg-type]  # tensors of load_split
        try:
            page.queue().launch(
                server_name=HOST,
                server_port=port,
                share=False,
                quiet=True,
                prevent_thread_lock=True,
                ssr_mode=False,
                max_file_size=MAX_UPLOAD,
            )
        except OSError as e:  # Gradio found no free port from 7860 (GRADIO_SERVER_PORT) on
            raise UserError(f"{first_line(e).split('. ')[0]} on {HOST}; give a free one with --port") from None
        print(f"lab-cnn explore: {page.local_url} (Ctrl-C stops it)", flush=True)
        page.block_thread()
