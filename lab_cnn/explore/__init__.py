"""``lab-cnn explore``: a local web page (Gradio) that shows what one or two trained nets make of a digit you
draw, upload or pick from the test set: every layer's maps with its shape, the kernels, the probabilities and a
saliency map. The page is served on 127.0.0.1 only, with no share link and no analytics."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import tempfile
from pathlib import Path

from lab_cnn import mnist
from lab_cnn.errors import ArgumentParser, UserError
from lab_cnn.explore.analysis import ExploredNet

HOST = "127.0.0.1"  # this machine only: the page has no login


def parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="lab-cnn explore",
        description="Serve a page on 127.0.0.1 that shows every layer of a trained net at work on a digit you draw "
        "(or upload, or pick from the test set), beside a second net with --compare-ckpt. Ctrl-C stops it.",
    )
    parser.add_argument("--ckpt_path", help="a checkpoint of a run (or last: the newest of --config's runs)")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="the config it was trained with, as for lab-cnn test (default: the run's own config.yaml)",
    )
    parser.add_argument("--compare-ckpt", help="a second checkpoint, shown beside the first on the same digit")
    parser.add_argument("--compare-config", action="append", default=[], help="the second checkpoint's config")
    parser.add_argument("--keras-model", help="a .keras model of keras-parity, shown through keras_parity.to_torch")
    parser.add_argument("--port", type=port_number, default=None, help="the port (default: the first free from 7860)")
    parser.add_argument(
        "--data-dir", default="data", help="folder holding MNIST/raw, for the test images (default data)"
    )
    return parser


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1-65535."""
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed; use a port from 1 to 65535")
    return int(text)


def explore_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    missing = [name for name in ("gradio", "captum") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"lab-cnn explore needs {' and '.join(missing)}: pip install 'lab-cnn[explore]'")
    nets = explored_nets(args)
    if args.port is not None:
        check_free(args.port)
    mnist.ensure(args.data_dir)
    images, labels = mnist.load_split(args.data_dir, train=False)
    serve(nets, images, labels, args.port)


def explored_nets(args: argparse.Namespace) -> list[ExploredNet]:
    """The nets to show, each checked as ``lab-cnn test`` checks a checkpoint; one line for what does not fit."""
    if args.config and not args.ckpt_path:
        raise UserError("--config: give the checkpoint it goes with, --ckpt_path")
    if args.compare_config and not args.compare_ckpt:
        raise UserError("--compare-config: give the checkpoint it goes with, --compare-ckpt")
    wanted = [(args.ckpt_path, args.config, "--ckpt_path"), (args.compare_ckpt, args.compare_config, "--compare-ckpt")]
    nets = [checkpoint_net(path, configs, key) for path, configs, key in wanted if path]
    if args.keras_model:
        nets.append(keras_net(args.keras_model))
    if not nets:
        raise UserError("give a net to explore: --ckpt_path (a run's checkpoint) or --keras-model (a .keras model)")
    if len(nets) > 2:
        raise UserError("two nets at most side by side: leave out --compare-ckpt or --keras-model")
    return nets


def checkpoint_net(path: str, configs: list[str], key: str) -> ExploredNet:
    from lab_cnn.api import model_and_data

    model, data = model_and_data(path, configs or None, key=key)
    checkpoint = Path(path)
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
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            raise UserError(f"--port {port}: in use on {HOST}; give another port, or leave --port out") from None


def serve(nets: list[ExploredNet], images: object, labels: object, port: int | None) -> None:
    """The page, until Ctrl-C. Gradio's uploads go to a folder of the server's own, removed when it stops."""
    with tempfile.TemporaryDirectory(prefix="lab-cnn-explore-") as uploads:
        os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no calls home
        os.environ["GRADIO_TEMP_DIR"] = uploads
        from lab_cnn.explore.page import Explorer, build_page

        page = build_page(Explorer(nets, images, labels))  # type: ignore[arg-type]  # tensors of load_split
        page.queue().launch(
            server_name=HOST, server_port=port, share=False, quiet=True, prevent_thread_lock=True, ssr_mode=False
        )
        print(f"lab-cnn explore: {page.local_url} (Ctrl-C stops it)", flush=True)
        page.block_thread()
