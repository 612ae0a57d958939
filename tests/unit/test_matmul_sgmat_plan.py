"""app/kernels/matmul_sgmat.py planning: which devices and weights take the subgroup-matrix path.
Pure Python (no GPU): the decision is made from the device's features, its adapter's
subgroupMatrixConfigs and subgroup sizes, and the weight's layout and width."""
from __future__ import annotations

from app.gpu.device import OPTIONAL_FEATURES, AdapterInfo
from app.gpu.shaders import preprocess, shader_source
from app.kernels import matmul_sgmat as sg

H100 = (("u8", "u32", 16, 16, 32), ("i8", "i32", 16, 16, 32), ("i8", "i32", 16, 8, 32))


def test_available_needs_feature_config_and_subgroup_32():
    f = {sg.FEATURE, "subgroups"}
    assert sg.available(f, H100, (32, 32))
    assert not sg.available({"subgroups"}, H100, (32, 32))             # feature not granted
    assert not sg.available(f, H100[:1] + H100[2:], (32, 32))         # no i8 16x16x32
    assert not sg.available(f, (), (32, 32))                           # wgpu-py, lavapipe
    assert not sg.available(f, H100, (16, 32))                         # variable subgroups
    assert not sg.available(f, H100, (64, 64))


def test_fits_layouts_with_32_blocks():
    assert sg.fits("q4_1", 4096) and sg.fits("q8_0a", 14336)
    assert not sg.fits("q4_1", 48)
    for layout in ("f32", "f16", "bf16", "q5_1", "q4_k", "q5_k", "q6_ka"):
        assert not sg.fits(layout, 4096)


class _Dev:
    def __init__(self, features, info):
        self.features, self.info = frozenset(features), info

    is_cpu = property(lambda self: self.info.is_cpu)


class _W:
    layout, cols = "q4_1", 2048


def test_plan_is_off_by_default_and_reads_the_device_description(monkeypatch):
    info = AdapterInfo("nvidia", "", "h100", "", "browser", subgroup_matrix=H100,
                       subgroup_sizes=(32, 32))
    assert not sg.ENABLED                      # off unless LOCALLLM_SGMAT=1 (not faster yet)
    assert not sg.plan(_Dev({sg.FEATURE}, info), _W)
    monkeypatch.setattr(sg, "ENABLED", True)
    assert sg.plan(_Dev({sg.FEATURE}, info), _W)
    cpu = AdapterInfo("google", "swiftshader", "", "", "browser", is_cpu=True,
                      subgroup_matrix=H100, subgroup_sizes=(32, 32))
    assert not sg.plan(_Dev({sg.FEATURE}, cpu), _W)
    bare = AdapterInfo("mesa", "", "llvmpipe", "", "native")             # defaults: no configs
    assert not sg.plan(_Dev({sg.FEATURE}, bare), _W)


def test_feature_is_requested_and_shader_preprocesses():
    assert sg.FEATURE in OPTIONAL_FEATURES
    for define in sg.DEFINE.values():
        for extra in ({}, {"BIAS": True, "ACC": True}):
            code = preprocess(shader_source("matmul_sgmat"), {define: True, "KB": sg.KB, **extra})
            assert "enable chromium_experimental_subgroup_matrix;" in code
            assert ("bias" in code.split("fn store4")[1]) == bool(extra)
