import ast
import pathlib

import pytest
import torch

import fasthg
from fasthg import reference


@pytest.mark.parametrize("nstack, entries, parameters", [(2, 742, 8_429_088), (8, 2752, 32_819_328)])
def test_state_dict_matches_princeton(nstack, entries, parameters):
    with torch.device("meta"):
        model = reference.PoseNet(nstack, 256, 16)
    state = model.state_dict()
    assert len(state) == entries
    assert sum(p.numel() for p in model.parameters()) == parameters
    # Every conv carries a bias, and every Residual a skip_layer (unused when in == out).
    convs = [k for k in state if k.endswith("conv.weight")]
    assert all(k.replace("weight", "bias") in state for k in convs)
    assert "hgs.0.0.up1.skip_layer.conv.weight" in state and not model.hgs[0][0].up1.need_skip
    assert state["pre.0.conv.weight"].shape == (64, 3, 7, 7)
    assert state[f"outs.{nstack - 1}.conv.weight"].shape == (16, 256, 1, 1)
    assert state["hgs.0.0.low2.low2.low2.low2.conv3.conv.weight"].shape == (256, 128, 1, 1)


def test_increase_widens_only_the_outer_level():
    with torch.device("meta"):
        hg = reference.Hourglass(4, 8, increase=4)
    assert hg.low1.conv3.conv.out_channels == 12
    assert hg.low2.low1.conv3.conv.out_channels == 12
    assert hg.low3.conv3.conv.out_channels == 8


def test_output_shape_and_nhwc_nchw_equivalence():
    nhwc = reference.PoseNet(2, 16, 5).double()
    nchw = reference.StackedHourglass(2, 16, 5).double()
    nchw.load_state_dict(nhwc.state_dict())
    images = torch.rand(2, 64, 128, 3, dtype=torch.float64)
    out = nhwc(images)
    assert out.shape == (2, 2, 5, 16, 32)
    torch.testing.assert_close(nchw(images.permute(0, 3, 1, 2)), out, rtol=0, atol=0)


def test_residual_identity_skip_ignores_skip_layer():
    block = reference.Residual(6, 6)
    x = torch.randn(2, 6, 4, 4)
    before = block(x)
    with torch.no_grad():
        block.skip_layer.conv.weight.fill_(1e3)
    torch.testing.assert_close(block(x), before, rtol=0, atol=0)


def test_reference_imports_nothing_else_from_fasthg():
    root = pathlib.Path(reference.__file__).parent
    for source in root.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1 and not (node.module or "").startswith("fasthg"), f"{source.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("fasthg") for a in node.names), source.name


@pytest.mark.parametrize("prefix, container", [("model.module.", "model"), ("module.", "state_dict"), ("", None)])
def test_load_state_dict_compat(tmp_path, prefix, container):
    source = reference.PoseNet(1, 16, 4)
    saved = {prefix + k: v for k, v in source.state_dict().items()}
    if container:
        saved = {container: saved, "epoch": 3}
    path = tmp_path / "checkpoint.pt"
    torch.save(saved, path)
    target = reference.PoseNet(1, 16, 4)
    fasthg.load_state_dict_compat(path, target)
    source.eval(), target.eval()
    images = torch.rand(1, 64, 64, 3)
    torch.testing.assert_close(target(images), source(images), rtol=0, atol=0)


def test_load_state_dict_compat_lists_missing_and_unexpected_keys():
    state = reference.PoseNet(1, 16, 4).state_dict()
    state.pop("outs.0.conv.bias")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['outs.0.conv.bias'\].*unexpected keys \['extra.weight'\]"):
        fasthg.load_state_dict_compat(state, reference.PoseNet(1, 16, 4))


def test_load_state_dict_compat_rejects_non_dicts(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(TypeError, match="src: expected a state_dict"):
        fasthg.load_state_dict_compat(path)
