"""The lab's PyTorch net and its variants: shapes, parameter counts, geometry checks."""

from __future__ import annotations

import pytest
import torch
import yaml

from lab_cnn import LabNet
from lab_cnn.documented import documented
from lab_cnn.errors import UserError
from lab_cnn.nets import ACTIVATIONS, LabCNN
from lab_cnn.summary import format_summary, layer_rows
from tests.helpers import CONFIGS

PYTORCH = documented()["pytorch"]


def shapes(net: LabCNN) -> dict[str, tuple[int, ...]]:
    return {name: shape for name, _, shape, _, _ in layer_rows(net)}


def test_baseline_matches_the_documented_derivation() -> None:
    net = LabCNN()
    got = shapes(net)
    for layer, shape in PYTORCH["shapes"].items():
        assert got[layer] == tuple(shape), layer
    assert sum(p.numel() for p in net.parameters()) == PYTORCH["params"]["fc50"]


def test_fc25_parameter_count() -> None:
    assert sum(p.numel() for p in LabCNN(hidden_units=25).parameters()) == PYTORCH["params"]["fc25"]


def expected_size(model: dict) -> tuple[int, int]:
    """Flatten size and parameter count by the lab's arithmetic, independent of the net's code."""
    channels, k = model.get("conv_channels", [10, 20]), model.get("kernel_size", 5)
    hidden = model.get("hidden_units", 50)
    hidden = [hidden] if isinstance(hidden, int) else hidden
    size, c_in, params = 28, 1, 0
    for c_out in channels:
        size = (size - k + 1) // 2
        params += (c_in * k * k + 1) * c_out
        c_in = c_out
    flat = c_in * size * size
    for n_in, n_out in zip([flat, *hidden], [*hidden, 10]):
        params += (n_in + 1) * n_out
    return flat, params


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("keras")))
def test_every_config_has_the_computed_shapes_and_counts(config: str) -> None:
    model = yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]
    net = LabNet(**model).net
    flat, params = expected_size(model)
    assert shapes(net)["flatten"] == (flat,)
    assert sum(p.numel() for p in net.parameters()) == params
    assert f"Total params: {params:,}" in format_summary(net)


def test_output_is_log_probabilities_for_every_activation() -> None:
    x = torch.randn(4, 1, 28, 28)
    for activation in ACTIVATIONS:
        out = LabCNN(activation=activation).eval()(x)
        assert out.shape == (4, 10)
        torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_several_hidden_layers_and_one_conv_block() -> None:
    net = LabCNN(conv_channels=[8], hidden_units=[64, 32])
    got = shapes(net)
    assert got["flatten"] == (8 * 12 * 12,) and got["fc1"] == (64,) and got["fc2"] == (32,) and got["fc3"] == (10,)


def test_impossible_geometry_is_refused_with_the_lab_formula() -> None:
    with pytest.raises(
        UserError, match=r"conv2: a 11x11 kernel does not fit its 9x9 input.*floor\(\(n_in \+ 2p - k\) / s\) \+ 1"
    ) as e:
        LabCNN(kernel_size=11)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="pool2: a 5x5 kernel does not fit its 3x3 input"):
        LabCNN(conv_channels=[4, 4], kernel_size=3, pool_size=5)
    with pytest.raises(UserError, match=f"^conv1: a {10**23}x{10**23} kernel does not fit its 28x28 input"):
        LabCNN(kernel_size=10**23)  # checked before torch is asked for the layer (an overflow's traceback)


@pytest.mark.parametrize(
    ("knobs", "refusal"),
    [
        ({"conv_channels": [10**23]}, rf"conv_channels: conv1's weight of shape \({10**23}, 1, 5, 5\) would bring"),
        ({"hidden_units": 10**12}, r"hidden_units: fc1's weight of shape \(1000000000000, 320\) would bring"),
        ({"hidden_units": [50, 10**12, 50]}, r"hidden_units: fc2's weight of shape \(1000000000000, 50\) would bring"),
        # counted before any is made: fc2 (12 GB) would be, fc3 (the output layer, 60 GB) not
        (
            {"conv_channels": [1], "kernel_size": 1, "pool_size": 1, "hidden_units": [1, 1_500_000_000]},
            r"hidden_units: fc3's weight of shape \(10, 1500000000\) would bring",
        ),  # fmt: skip
    ],
)
def test_a_net_whose_weights_would_not_fit_in_memory_is_refused_naming_the_layer(knobs: dict, refusal: str) -> None:
    """Before torch allocates them: it would fail with its allocator's words, or past 2**63 with a traceback.
    (Each too big for any machine's memory; the layers before it are small.)"""
    with pytest.raises(UserError, match=f"^{refusal} the net to .* GiB of float32, more than this machine's"):
        LabCNN(**knobs)
    with pytest.raises(UserError, match=f"^model.{refusal}"):
        LabNet(**knobs)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"pool": "median"}, "pool"),
        ({"activation": "swish"}, "activation"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"conv_channels": [10, -2]}, "conv_channels"),
        ({"conv_channels": []}, "conv_channels"),
        ({"hidden_units": 2.5}, "hidden_units"),
        ({"dropout": 1.0}, "dropout"),
        ({"conv_dropout": -0.1}, "conv_dropout"),
        ({"kernel_size": None}, "kernel_size"),
    ],
)
def test_bad_knobs_name_the_key(kwargs: dict, key: str) -> None:
    if kwargs == {"kernel_size": None}:  # shown as a config writes it, not as Python does
        with pytest.raises(UserError, match="^kernel_size: null is not allowed"):
            LabCNN(**kwargs)
    with pytest.raises(UserError, match=rf"^{key}: .* is not allowed|^{key}: an empty list"):
        LabCNN(**kwargs)
    # The model takes the net's knobs as its own: they are named as its config and fit(model=...) name them.
    with pytest.raises(UserError, match=rf"^model\.{key}: .* is not allowed|^model\.{key}: an empty list"):
        LabNet(**kwargs)
