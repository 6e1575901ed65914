"""The kernel registry's lookup: the configuration a launcher gets for a kernel, dtype, architecture and flags."""
import pytest
import torch

from fasthg.kernels import registry

CPU = torch.device("cpu")
ARCHITECTURES = [*registry.ARCHS, registry.INTERPRETER]


def scan(name, dtype, arch, **flags):
    """lookup's meaning, spelled as the linear scan it replaces: the first configuration that
    agrees on every flag it defines; an emulated architecture with no configuration of the kernel
    in that dtype (fp64 convolutions) takes the interpreter's."""
    if not any(config.name == name and config.dtype == dtype and arch in config.archs for config in registry.REGISTRY):
        arch = registry.INTERPRETER
    return next((config for config in registry.REGISTRY if config.name == name and config.dtype == dtype
                 and arch in config.archs and all(config.constexprs.get(k, v) == v for k, v in flags.items())), None)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_configuration_is_found_by_its_own_constexprs(arch):
    with registry.emulating(arch):
        for config in registry.REGISTRY:
            if arch in config.archs:
                assert registry.lookup(config.name, config.dtype, CPU, **config.constexprs) is config, config.label


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_partial_flags_give_the_first_agreeing_configuration(arch):
    kernels = {(config.name, config.dtype) for config in registry.REGISTRY}
    with registry.emulating(arch):
        for name, dtype in sorted(kernels, key=str):
            for flags in ({}, {"KSIZE": 3}, {"KSIZE": 1, "PROLOGUE": False}, {"STYLE": 1}, {"NOT_A_FLAG": 7}):
                expected = scan(name, dtype, arch, **flags)
                if expected is None:
                    with pytest.raises(KeyError):
                        registry.lookup(name, dtype, CPU, **flags)
                else:
                    assert registry.lookup(name, dtype, CPU, **flags) is expected, (name, dtype, flags)


def test_the_cached_answer_follows_the_emulated_architecture():
    flags = dict(KSIZE=3, PROLOGUE=True, HAS_SKIP=False, HAS_RESIDUAL=False, STATS=True, UPDATE_RUNNING=True)
    interpreted = registry.lookup("conv_forward", torch.float16, CPU, **flags)
    with registry.emulating(80):
        gpu = registry.lookup("conv_forward", torch.float16, CPU, **flags)
    assert registry.INTERPRETER in interpreted.archs and 80 in gpu.archs
    assert interpreted.constexprs["BLOCK_K"] != gpu.constexprs["BLOCK_K"]
    assert registry.lookup("conv_forward", torch.float16, CPU, **flags) is interpreted


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("precision", ["tf32", "ieee"])
def test_fp32_convolutions_ship_both_input_precisions(arch, precision):
    with registry.emulating(arch):
        for name in ("conv_forward", "conv_backward"):
            config = registry.lookup(name, torch.float32, CPU, KSIZE=3, INPUT_PRECISION=precision)
            assert config.constexprs["INPUT_PRECISION"] == precision
            assert config.constexprs["KSIZE"] == 3


def test_no_match_is_a_key_error_naming_what_was_asked():
    with registry.emulating(80), pytest.raises(KeyError) as raised:
        registry.lookup("conv_forward", torch.float32, CPU, KSIZE=5)
    assert raised.value.args[0] == "no shipped configuration of conv_forward for torch.float32 on 80 with {'KSIZE': 5}"
    with pytest.raises(KeyError, match="no shipped configuration of no_such_kernel for torch.float16 on interpreter"):
        registry.lookup("no_such_kernel", torch.float16, CPU)


def test_cuda_architecture_is_read_once_per_device(monkeypatch):
    asked = []

    def capability(index):
        asked.append(index)
        return {0: (9, 0), 1: (8, 6)}[index]

    monkeypatch.setattr(registry, "_cuda_archs", {})
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    for _ in range(3):
        assert registry.current_arch(torch.device("cuda", 0)) == 90
        assert registry.current_arch(torch.device("cuda")) == 80
    assert asked == [0, 1]
