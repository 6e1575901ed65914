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


def test_signatures_follow_the_kernels_parameters():
    # Every runtime parameter of a kernel is either in a configuration's signature or absent (None
    # at launch), in the kernel's order; conditional ones are taken exactly when one of their flags is on
    # and none of the flags that take them away again.
    for config in registry.REGISTRY:
        conditional = registry.CONDITIONAL_PARAMETERS.get(config.kernel.fn.__name__, {})
        assert set(conditional) <= set(config.parameters), config.label
        assert [name for name in config.parameters if name in config.signature or name in config.absent] == \
            config.parameters, config.label
        removed = registry.UNUSED_UNDER.get(config.kernel.fn.__name__, {})
        for name, flags in conditional.items():
            taken = any(config.constexprs[flag] for flag in flags) and \
                not any(config.constexprs[flag] for flag in removed.get(name, ()))
            assert (name in config.signature) == taken, (config.label, name)


def test_signature_types_by_name():
    forward = registry.lookup("conv_forward", torch.float16, CPU, KSIZE=3, PROLOGUE=True, STATS=True)
    assert forward.triton_signature() == {
        "y_ptr": "*fp16", "mean_ptr": "*fp32", "var_ptr": "*fp32", "bn_weight_ptr": "*fp32", "bn_bias_ptr": "*fp32",
        "w_ptr": "*fp16", "w_stride_o": "i32", "w_stride_c": "i32", "w_stride_h": "i32", "w_stride_w": "i32",
        "bias_ptr": "*fp32", "out_ptr": "*fp16", "part_mean_ptr": "*fp32", "part_m2_ptr": "*fp32",
        "counter_ptr": "*i32", "out_mean_ptr": "*fp32", "out_var_ptr": "*fp32", "running_mean_ptr": "*fp32",
        "running_var_ptr": "*fp32", "N": "i32", "H": "i32", "W": "i32", "C_in": "i32", "C_out": "i32",
        "eps": "fp32", "momentum": "fp32"}
    assert forward.absent == ["skip_x_ptr", "skip_w_ptr", "skip_bias_ptr", "residual_ptr", "upsampled_ptr", "C_skip"]


def test_forward_and_backward_have_their_own_tiles():
    with registry.emulating(80):
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            forward = registry.lookup("conv_forward", dtype, CPU, KSIZE=3)
            backward = registry.lookup("conv_backward", dtype, CPU, KSIZE=3)
            # a forward K-step reads 64 bytes of each weight row: four 16-byte vectors (BLOCK_K 32 in
            # 16-bit, 16 in fp32, whose 32 spilled on sm_80)
            assert forward.constexprs["BLOCK_K"] * dtype.itemsize >= 64 and "BLOCK_J" not in forward.constexprs
            assert backward.constexprs["BLOCK_K"] == 16 and forward.num_stages > backward.num_stages


PIXEL_KERNELS = ("upsample_add_forward", "upsample_add_backward", "max_pool2x2_forward", "max_pool2x2_backward")


def test_autotuning_alternatives_share_their_default_variant():
    alternatives = [config for config in registry.REGISTRY
                    if registry.is_alternative(config) and config.name not in PIXEL_KERNELS]
    assert alternatives and all(config.name == "conv_forward" and config.constexprs["KSIZE"] == 3
                                and config.num_warps == 8
                                and config.constexprs["BLOCK_M"] == 128 and registry.ARCHS == config.archs
                                for config in alternatives)
    for config in alternatives:
        default, = registry.alternatives(config)
        assert not registry.is_alternative(default) and default.constexprs["BLOCK_M"] == 64
        assert {k: v for k, v in default.constexprs.items() if k != "BLOCK_M"} == \
            {k: v for k, v in config.constexprs.items() if k != "BLOCK_M"}
        with registry.emulating(80):
            assert registry.lookup(config.name, config.dtype, CPU, **config.constexprs) is config
            flags = {k: v for k, v in config.constexprs.items() if not k.startswith("BLOCK_")}
            assert registry.lookup(config.name, config.dtype, CPU, **flags) is default


def test_every_gpu_pixel_variant_ships_a_fine_tile_of_a_quarter_of_its_pixels():
    regular = [config for config in registry.REGISTRY if config.name in PIXEL_KERNELS
               and not registry.is_alternative(config)]
    assert {config.name for config in regular} == set(PIXEL_KERNELS)
    for config in regular:
        fine = registry.finer_tile(config)
        if config.archs == registry.ARCHS:
            assert registry.alternatives(config) == (fine,) and registry.is_alternative(fine), config.label
            assert fine.constexprs["BLOCK_P"] * 4 == config.constexprs["BLOCK_P"]
            assert fine.num_warps == (8 if config.constexprs.get("STATS") else 4)
            assert {k: v for k, v in fine.constexprs.items() if not k.startswith("BLOCK_")} == \
                {k: v for k, v in config.constexprs.items() if not k.startswith("BLOCK_")}
            assert registry.finer_tile(fine) is fine
        else:  # the interpreter runs one tile
            assert fine is config and registry.alternatives(config) == ()
