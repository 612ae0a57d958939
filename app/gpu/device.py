"""The backend-independent part of a GPU device: buffers with a ledger, a pipeline cache and a
one-shot dispatch helper. Backends (browser.py, native.py) implement the `_`-prefixed hooks.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DeviceLostError, GPUError
from .ledger import Ledger
from .plan import Plan, Timer
from .shaders import preprocess, shader_source


class BufferUsage:
    """WebGPU GPUBufferUsage flags (identical numbers in the browser and in wgpu-native)."""
    MAP_READ = 0x0001
    MAP_WRITE = 0x0002
    COPY_SRC = 0x0004
    COPY_DST = 0x0008
    UNIFORM = 0x0040
    STORAGE = 0x0080
    QUERY_RESOLVE = 0x0200


STORAGE_RW = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST

# Limits the engine cares about, in WebGPU's camelCase (the browser's names); wgpu-py uses
# kebab-case of the same names.
ENGINE_LIMITS = (
    "maxStorageBufferBindingSize",
    "maxBufferSize",
    "maxStorageBuffersPerShaderStage",
    "maxComputeWorkgroupStorageSize",
    "maxComputeInvocationsPerWorkgroup",
    "maxComputeWorkgroupSizeX",
    "maxComputeWorkgroupsPerDimension",
    "maxUniformBufferBindingSize",
    "maxBindGroups",
    "minStorageBufferOffsetAlignment",
)
# chromium-experimental-subgroup-matrix: Dawn's matrix units (tensor cores), offered only with
# the allow_unsafe_apis toggle (Chrome: --enable-unsafe-webgpu); app/kernels/matmul_sgmat.py.
OPTIONAL_FEATURES = ("shader-f16", "subgroups", "timestamp-query",
                     "chromium-experimental-subgroup-matrix")


@dataclass(frozen=True)
class AdapterInfo:
    vendor: str
    architecture: str
    device: str
    description: str
    backend: str  # "browser" (navigator.gpu) or "native" (wgpu-native)
    # A software adapter on the CPU (Chrome's SwiftShader, Mesa's lavapipe/llvmpipe): workgroup
    # barriers there cost far more than redundant work, so kernels pick barrier-free variants.
    is_cpu: bool = False
    # GPUAdapterInfo.subgroupMatrixConfigs as (component, result, M, N, K) tuples (browser backend
    # with the subgroup-matrix feature only) and (subgroupMinSize, subgroupMaxSize); see
    # app/kernels/matmul_sgmat.py.
    subgroup_matrix: tuple = ()
    subgroup_sizes: tuple = (0, 0)


CPU_ADAPTER_NAMES = ("swiftshader", "llvmpipe", "lavapipe")


def is_cpu_adapter(*names: str, adapter_type: str = "") -> bool:
    """True for a CPU adapter: wgpu-native's adapter_type "CPU", or a known software rasterizer's
    name in any of the adapter info strings (the browser reports no adapter type)."""
    text = " ".join(str(n) for n in names).lower()
    return adapter_type.upper() == "CPU" or any(n in text for n in CPU_ADAPTER_NAMES)


@dataclass(eq=False)
class Buffer:
    handle: object
    size: int
    usage: int
    kind: str
    label: str
    destroyed: bool = field(default=False)


@dataclass(eq=False)
class Pipeline:
    handle: object
    key: tuple
    layouts: dict = field(default_factory=dict)


class Device:
    """One adapter + device. Create with `await app.gpu.open_device()`."""

    backend = "abstract"

    def __init__(self, info: AdapterInfo, features: frozenset[str], limits: dict[str, int]):
        self.info = info
        self.features = features
        self.limits = limits
        self.ledger = Ledger()
        self.lost: DeviceLostError | None = None
        self.lost_callbacks: list = []  # called with the DeviceLostError when the device is lost
        self._pipelines: dict[tuple, Pipeline] = {}

    @property
    def is_cpu(self) -> bool:
        """A software (CPU) adapter: see AdapterInfo.is_cpu."""
        return self.info.is_cpu

    # -- buffers -------------------------------------------------------------------------------
    def create_buffer(self, size: int, *, kind: str, label: str = "",
                      usage: int = STORAGE_RW) -> Buffer:
        self._check_alive()
        if size <= 0:
            raise ValueError(f"buffer {label!r}: size must be positive, got {size}")
        size = (size + 3) & ~3  # WebGPU needs 4-byte multiples for copies and writes
        if size > self.limits["maxBufferSize"]:
            raise GPUError(f"buffer {label!r} of {size} bytes exceeds this device's maxBufferSize "
                           f"({self.limits['maxBufferSize']}); it must be split")
        handle = self._create_buffer(size, usage, label)
        self.ledger.alloc(kind, size)
        return Buffer(handle, size, usage, kind, label)

    def upload(self, data, *, kind: str, label: str = "", usage: int = STORAGE_RW) -> Buffer:
        """A new buffer holding `data` (bytes-like natively; also JS typed arrays in the page)."""
        buf = self.create_buffer(self._nbytes(data), kind=kind, label=label, usage=usage)
        self.write(buf, data)
        return buf

    def write(self, buf: Buffer, data, offset: int = 0) -> None:
        self._check_alive()
        n = self._nbytes(data)
        if offset + n > buf.size:
            raise ValueError(f"write of {n} bytes at {offset} overflows {buf.label!r} ({buf.size})")
        if n % 4:
            data = bytes(memoryview(data).cast("B")) + b"\0" * (4 - n % 4)
        self._write(buf, data, offset)

    async def read(self, buf: Buffer, offset: int = 0, size: int | None = None) -> bytes:
        """Copy `size` bytes at `offset` of a buffer back to the host."""
        self._check_alive()
        size = buf.size - offset if size is None else size
        if offset % 4 or size % 4 or offset + size > buf.size:
            raise ValueError(f"read of {size} bytes at {offset} from {buf.label!r} ({buf.size})")
        return await self._read(buf, offset, size)

    def destroy_buffer(self, buf: Buffer) -> None:
        if buf.destroyed:
            return
        buf.destroyed = True
        self.ledger.free(buf.kind, buf.size)
        self._destroy_buffer(buf)

    # -- pipelines -----------------------------------------------------------------------------
    async def pipeline(self, shader: str, entry: str = "main",
                       constants: dict[str, float] | None = None,
                       defines: dict | None = None) -> Pipeline:
        """Compute pipeline for `entry` of shaders/<shader>.wgsl, cached by (file, entry, constants,
        defines). `constants` are WGSL override constants; `defines` feed the preprocessor
        (app/gpu/shaders.py). The define SHADER_F16=True selects a kernel's f16-compute variant
        and requires the device's shader-f16 feature (layout defines such as F16 do not)."""
        self._check_alive()
        key = (shader, entry, tuple(sorted((constants or {}).items())),
               tuple(sorted((defines or {}).items())))
        cached = self._pipelines.get(key)
        if cached is None:
            if (defines or {}).get("SHADER_F16") and "shader-f16" not in self.features:
                raise GPUError(f"{shader}: the f16 variant needs the shader-f16 feature, which this "
                               "adapter lacks; use the f32 path")
            code = preprocess(shader_source(shader), defines, f"shaders/{shader}.wgsl")
            handle = await self._create_pipeline(shader, code, entry, dict(constants or {}))
            cached = self._pipelines[key] = Pipeline(handle, key)
        return cached

    def bind(self, pipeline: Pipeline, buffers: list, group: int = 0):
        """Bind group whose binding i is buffers[i] (a Buffer, or (Buffer, offset, size))."""
        entries = []
        for i, b in enumerate(buffers):
            buf, off, size = (b, 0, b.size) if isinstance(b, Buffer) else b
            if buf.destroyed:
                raise ValueError(f"binding {i} uses destroyed buffer {buf.label!r}")
            limit = self.limits["maxStorageBufferBindingSize"]
            if size > limit and buf.usage & BufferUsage.STORAGE:
                raise GPUError(f"binding {i} ({buf.label!r}, {size} bytes) exceeds "
                               f"maxStorageBufferBindingSize ({limit}); split the tensor")
            entries.append((i, buf, off, size))
        return self._bind(pipeline, group, entries)

    def dispatch(self, pipeline: Pipeline, bind_groups: list, workgroups: tuple[int, ...]) -> None:
        """Encode one compute pass with one dispatch and submit it."""
        self._check_alive()
        self._dispatch(pipeline, bind_groups, self._workgroups(workgroups))

    def _workgroups(self, workgroups: tuple[int, ...]) -> tuple[int, int, int]:
        """(x, y, z) padded with 1s, checked against the per-dimension limit."""
        x, y, z = (tuple(workgroups) + (1, 1))[:3]
        cap = self.limits["maxComputeWorkgroupsPerDimension"]
        if max(x, y, z) > cap:
            raise GPUError(f"dispatch {x}x{y}x{z} exceeds {cap} workgroups per dimension; "
                           "spill into y")
        return x, y, z

    # -- dispatch plans (app/gpu/plan.py) ------------------------------------------------------
    def plan(self, name: str = "plan") -> Plan:
        """An empty dispatch plan; ops record into it when passed as `target`."""
        self._check_alive()
        return Plan(self, name)

    def replay(self, plan: Plan, step: Buffer | None = None, step_data=None,
               timer: Timer | None = None) -> None:
        """Write `step_data` into `step` (offset 0; at most one writeBuffer), then encode all of
        the plan's dispatches in one compute pass and submit it. With a `timer` (dev.timer()),
        GPU timestamps are written at the start and end of that pass."""
        self._check_alive()
        if plan.device is not self:
            raise ValueError(f"{plan!r} was recorded on another device")
        if step_data is not None:
            if step is None:
                raise ValueError(f"replay of {plan.name!r}: step_data given without a step buffer")
            if step.destroyed:
                raise ValueError(f"replay of {plan.name!r}: step buffer {step.label!r} is destroyed")
            if not step.usage & BufferUsage.COPY_DST:
                raise ValueError(f"replay of {plan.name!r}: step buffer {step.label!r} lacks COPY_DST")
            n = self._nbytes(step_data)
            if n > step.size:
                raise ValueError(f"replay of {plan.name!r}: {n} bytes of step data overflow "
                                 f"{step.label!r} ({step.size})")
            if n % 4:
                step_data = bytes(memoryview(step_data).cast("B")) + b"\0" * (4 - n % 4)
        if timer is not None and timer.device is not self:
            raise ValueError("the timer belongs to another device")
        self._replay(plan.prepared(), step if step_data is not None else None, step_data, timer)

    def timer(self) -> Timer:
        """Two GPU timestamps around a replay's compute pass (see Timer)."""
        self._check_alive()
        if "timestamp-query" not in self.features:
            raise GPUError("GPU timers need the timestamp-query feature, which this device lacks")
        resolve = self.create_buffer(16, kind="staging", label="timer.resolve",
                                     usage=BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC)
        return Timer(self, self._create_timer(), resolve)

    async def check(self, what: str = "the last GPU calls") -> None:
        """Raise the first validation/out-of-memory error since the last check (named errors)."""
        self._check_alive()
        await self._check(what)

    def _check_alive(self) -> None:
        if self.lost is not None:
            raise self.lost

    def _mark_lost(self, reason: str, message: str) -> None:
        """Record the loss (later calls raise it) and tell the lost_callbacks, once."""
        if self.lost is None:
            self.lost = DeviceLostError(reason, message)
            for cb in list(self.lost_callbacks):
                cb(self.lost)

    def memory(self) -> dict:
        return {**self.ledger.snapshot(), "limit": self.limits["maxBufferSize"]}

    # -- backend hooks -------------------------------------------------------------------------
    @staticmethod
    def _nbytes(data) -> int:
        raise NotImplementedError

    def _create_buffer(self, size, usage, label): raise NotImplementedError
    def _write(self, buf, data, offset): raise NotImplementedError
    async def _read(self, buf, offset, size): raise NotImplementedError
    def _destroy_buffer(self, buf): raise NotImplementedError
    async def _create_pipeline(self, name, code, entry, constants): raise NotImplementedError
    def _bind(self, pipeline, group, entries): raise NotImplementedError
    def _dispatch(self, pipeline, bind_groups, xyz): raise NotImplementedError
    def _prepare_plan(self, dispatches): raise NotImplementedError
    def _replay(self, prepared, step, step_data, timer): raise NotImplementedError
    def _create_timer(self): raise NotImplementedError
    def _destroy_timer(self, timer): raise NotImplementedError
    async def _check(self, what): raise NotImplementedError
    def destroy(self): raise NotImplementedError
