"""LocalLLM: the runtime API, the same under CPython and in the engine worker (Pyodide).

    rt = LocalLLM()                          # NativePlatform natively; the worker passes its own
    rt.on("progress", lambda d: print(d["progress"]))
    await rt.init()                          # the catalog's default model (bundled SmolLM2)
    reply = await rt.chat([{"role": "user", "content": "Hi"}], max_tokens=64)
    async for item in await rt.chat(messages, stream=True): print(item["delta"], end="")
    await rt.switch_model("gemma-3-270m-it-q4_k_m"); await rt.unload()

One model at a time. Requests (chat, complete) and model operations (init, switch_model, unload)
take a FIFO turn (turns.py) when called and run one at a time in that order: outputs are never
interleaved. interrupt() aborts the running request (finish_reason "abort") at the next token the
model yields; switch_model() and unload() abort the running request and every queued one (those
end with "abort" and no GPU work), then run. A request is checked (options, prompt length) when
it is called, so errors such as PromptTooLongError come before any GPU work; stream=True returns
an async iterator of items (generation.py), stream=False their joined result. Leaving a stream
early aborts its generation.

State (status()): idle (no model) -> loading -> ready <-> generating; error after a failed load
(init may be called again). "status" events fire on every change of state, model or error; the
load's progress is live in status()["progress"] and in "progress" events. I/O goes through the
Platform (platform.py); the device is opened once and kept, and the allocation ledger's total at
that moment is the baseline that unload() returns to.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from ..gpu import WebGPUUnavailableError
from .backend import BackendChoice, check_backend, choose_backend
from .catalog_ops import CatalogOps
from ..kernels.sampling import SamplingParams
from ..tokenizer.chat import ChatFormat
from .errors import ModelNotFoundError
from .events import Emitter, LoadProgress
from .memory import CPU_PREFILL_CHUNK, GPU_PREFILL_CHUNK, MemoryWatch
from .generation import Request
from .inference import Inference
from .openai import ChatCompletions
from .platform import Platform, default_platform
from .turns import Turns

log = logging.getLogger("app.runtime")


@dataclass
class Loaded:
    entry: object                    # CatalogModel
    model: object                    # app.models.Model
    tok: object                      # app.tokenizer.Tokenizer
    chat: ChatFormat
    load_s: float
    options: dict
    serial: int
    chat_stop: set = field(default_factory=set)
    raw_stop: set = field(default_factory=set)


class LoadCancelledError(RuntimeError):
    """init()/switch_model() was stopped by cancel_load(); the downloaded part is kept."""


@dataclass
class _Load:
    model_id: str | None                # as the caller gave it (None: the default)
    ticket: object                      # its turns.Ticket
    task: asyncio.Task
    cancelled: bool = False


def _release_kernel_caches(dev) -> None:
    """Free the small buffers kernels cache per device and share between plans (matvec's shape
    uniforms): they outlive Model.destroy, and with no model loaded no plan references them.
    Without this, unload would leave them on the ledger (N x 32 bytes of "uniforms")."""
    from ..kernels.matvec import release_shape_uniforms
    release_shape_uniforms(dev)


class LocalLLM(Inference, CatalogOps):
    def __init__(self, platform: Platform | None = None, catalog=None):
        self.platform = platform if platform is not None else default_platform()
        self._catalog = catalog
        self._events = Emitter(self.platform.emit)
        self._turns = Turns()
        self._dev = None
        self.baseline: int | None = None      # ledger total when the device was opened
        self._loaded: Loaded | None = None
        self._serial = 0
        self._state, self._model, self._progress, self._error = "idle", None, 0.0, None
        self._backend: BackendChoice | None = None   # of the loaded (or loading) model
        self._pending: list[Request] = []     # chat/complete requests not finished, in order
        self._loads_pending = 0               # init/switch calls not finished
        self._loads: list[_Load] = []         # their tasks, for cancel_load()
        self._tasks: set = set()
        self._memory = MemoryWatch(lambda d: self._events.emit("memory-warning", d))
        self.chat_completions = ChatCompletions(self)

    # -- events and status ------------------------------------------------------------------
    def on(self, name: str, callback):
        """Call `callback(detail)` on each `name` event; returns a function that unsubscribes."""
        return self._events.on(name, callback)

    def status(self) -> dict:
        """state, model, progress, error, and backend: "webgpu" | "cpu" of the loaded (or
        loading) model, None without one; backend_reason: why auto picked the CPU."""
        b = self._backend
        return {"state": self._state, "model": self._model, "progress": self._progress,
                "error": dict(self._error) if self._error else None,
                "backend": b.name if b else None, "backend_reason": b.reason if b else None}

    def _set(self, **changes) -> None:
        before = (self._state, self._model, self._error, self._backend)
        for k, v in changes.items():
            setattr(self, "_" + k, v)
        if (self._state, self._model, self._error, self._backend) != before:
            self._events.emit("status", self.status())

    def _fail(self, e: BaseException, model_id) -> None:
        err = {"name": type(e).__name__, "message": str(e) or type(e).__name__}
        self._set(state="error", model=None, progress=0.0, error=err, backend=None)
        self._events.emit("error", {**err, "model": model_id})

    # -- the device ---------------------------------------------------------------------------
    async def _device(self):
        if self._dev is None or self._dev.lost is not None:
            self._dev = await self.platform.open_device()
            self.baseline = self._dev.ledger.total
        return self._dev

    @staticmethod
    def _device_info(dev) -> dict:
        i = dev.info
        return {"backend": "webgpu",
                "adapter": {"vendor": i.vendor, "architecture": i.architecture,
                            "device": i.device, "description": i.description,
                            "is_cpu": i.is_cpu},
                "features": sorted(dev.features), "limits": dict(dev.limits)}

    async def check_webgpu(self) -> dict:
        """Adapter, features and limits; WebGPUUnavailableError (and an "error" event) without."""
        try:
            dev = await self._device()
        except Exception as e:
            self._events.emit("error", {"name": type(e).__name__, "message": str(e),
                                        "model": None})
            raise
        return self._device_info(dev)

    def runtime_info(self) -> dict:
        """What is known without opening a device: adapter fields are None before the first
        check_webgpu()/init(). memory: the ledger (live bytes by kind, total, peak, buffers)
        plus the platform's budget and the baseline unload() returns to."""
        dev = self._dev
        info = (self._device_info(dev) if dev is not None else
                {"backend": "webgpu", "adapter": None, "features": [], "limits": {}})
        memory = None
        if dev is not None:
            memory = {**dev.ledger.snapshot(), "budget": self.platform.memory_budget(dev),
                      "baseline": self.baseline}
        b, loaded = self._backend, self._loaded
        cpu = None
        if b is not None and b.name == "cpu":
            info["backend"] = "cpu"
            if loaded is not None and getattr(loaded.model, "info", None) is not None:
                i = loaded.model.info
                cpu = {"engine": "llama.cpp (wllama, WebAssembly)", "threads": i.threads,
                       "multithread": i.multithread,
                       "cross_origin_isolated": i.cross_origin_isolated,
                       "llama_cpp": i.llama_cpp, "wllama": i.wllama,
                       # requests whose prompt llama.cpp tokenized to another count than ours
                       "prompt_mismatches": loaded.model.stats.get("prompt_mismatches", 0)}
        return {**info, "backend_reason": b.reason if b else None, "cpu": cpu,
                "cpu_available": self.platform.cpu_unavailable() is None,
                "platform": self.platform.name, "memory": memory,
                "versions": self.platform.versions()}

    # -- the catalog (catalog(), add_model and the cache manager: catalog_ops.py) ------
    async def available_models(self) -> list[dict]:
        """Catalog dicts plus "cached", "partial", "cached_bytes" (platform.cached),
        "runnable": None, or why neither backend can run it here (CatalogModel.runnable for
        WebGPU; a sentence for a person, shown as "why disabled"), and "backend": what
        init(backend="auto") would use ("webgpu" | "cpu" | None). "memory_bytes": the GPU
        bytes the memory check before a load estimates at the default context (None when
        unknown: a user model before its first load). "cpu_ok" (from the catalog) marks the
        models small enough to be pleasant on a CPU."""
        catalog = await self.catalog()
        cpu = self.platform.cpu_unavailable() is None
        try:
            dev = await self._device()
            info, budget, gpu_missing = self._device_info(dev), self.platform.memory_budget(dev), None
        except WebGPUUnavailableError as e:
            info, budget, gpu_missing = None, None, str(e)
        chunk = CPU_PREFILL_CHUNK if info and info["adapter"]["is_cpu"] else GPU_PREFILL_CHUNK
        out = []
        for m in catalog.all():
            d = m.to_dict()
            d["memory_bytes"] = m.memory_bytes(None, "f16", chunk)   # as MemoryWatch.before
            c = await self.platform.cached(m)
            d.update(cached=c["cached"], partial=c["partial"], cached_bytes=c["bytes"])
            reason = gpu_missing if info is None else m.runnable(info, budget)
            on_cpu = cpu and m.format == "gguf"
            d["backend"] = "webgpu" if reason is None else "cpu" if on_cpu else None
            d["runnable"] = None if d["backend"] else reason
            out.append(d)
        return out

    async def _resolve_or_fail(self, model_id):
        """_resolve; on failure an "error" event, and the error state unless a model is still
        loaded (an unknown id does not unload the current model)."""
        try:
            return await self._resolve(model_id)
        except Exception as e:
            if self._loaded is None:
                self._fail(e, model_id)
            else:
                self._events.emit("error", {"name": type(e).__name__, "message": str(e),
                                            "model": model_id})
            raise

    async def _resolve(self, model_id):
        catalog = await self.catalog()
        if model_id is None:
            return catalog.default()
        try:
            return catalog.get(model_id)
        except ModelNotFoundError:
            entry = await self.platform.local_model(str(model_id), catalog)
            if entry is None:
                raise
            return entry

    # -- loading --------------------------------------------------------------------------------
    async def init(self, model_id: str | None = None, *, context_length: int | None = None,
                   kv_dtype: str = "f16", hf_token: str | None = None, backend: str = "auto",
                   cpu_fallback: bool = False, threads: int | None = None,
                   **options) -> dict:
        """Load `model_id` (a catalog id; natively also a file/folder path; None = the
        catalog's default) -> {"model", "load_s", "backend"}. Already loaded with the same
        options: returns at once. Another model loaded: it is unloaded first (queued requests
        still run on it before; switch_model aborts them). cancel_load() stops it (and a
        queued one) with LoadCancelledError.

        backend: "auto" (WebGPU when it works and the model fits, else the CPU backend; see
        backend.py), "webgpu" or "cpu". cpu_fallback: after a lost GPU device, load the model
        on the CPU for the next request. threads: the CPU backend's threads (default: by the
        cores, 1 without cross-origin isolation). `options`: platform extras (native:
        quantize)."""
        opts = self._options(context_length, kv_dtype, backend, cpu_fallback, threads, options)
        ticket = self._turns.take()

        async def run():
            async with ticket:
                entry = await self._resolve_or_fail(model_id)
                cur = self._loaded
                if cur is not None and cur.entry.id == entry.id and cur.options == opts:
                    return self._load_result(cur)
                self._unload_now()
                return await self._load(entry, opts, hf_token)
        return await self._cancellable(model_id, ticket, run)

    async def switch_model(self, model_id: str | None, *, context_length: int | None = None,
                           kv_dtype: str = "f16", hf_token: str | None = None,
                           backend: str = "auto", cpu_fallback: bool = False,
                           threads: int | None = None, **options) -> dict:
        """Abort the running and queued requests, unload (ledger back to the baseline), then
        load `model_id` like init()."""
        opts = self._options(context_length, kv_dtype, backend, cpu_fallback, threads, options)
        self._abort_pending()
        ticket = self._turns.take()

        async def run():
            async with ticket:
                entry = await self._resolve_or_fail(model_id)
                self._unload_now()
                return await self._load(entry, opts, hf_token)
        return await self._cancellable(model_id, ticket, run)

    async def _cancellable(self, model_id, ticket, run) -> dict:
        """Run a load (`run`, which holds `ticket`) as its own task, listed in self._loads so
        that cancel_load() can stop it; a cancelled load raises LoadCancelledError here."""
        load = _Load(model_id, ticket, asyncio.ensure_future(run()))
        self._loads.append(load)
        self._loads_pending += 1
        try:
            return await load.task
        except asyncio.CancelledError:
            if not load.cancelled:
                raise                       # the caller itself was cancelled
            raise LoadCancelledError(
                f"loading {model_id or 'the default model'} was cancelled. The part already "
                "downloaded is kept in this device's cache; the next init() of this model "
                "resumes the download where it stopped.") from None
        finally:
            ticket.release()                # a load cancelled before it ever ran holds it
            self._loads_pending -= 1
            self._loads.remove(load)

    def cancel_load(self) -> bool:
        """Stop the running init/switch_model, in whatever phase (download, cache read, GPU
        upload, compile), and every queued one: each raises LoadCancelledError. The running
        load frees what it put on the GPU and leaves state idle (a "status" event); a queued
        load that never started leaves the current model loaded. Chunks already downloaded
        stay in the cache, so the next init() resumes. Answers at once; True when something
        was cancelled."""
        live = [ld for ld in self._loads if not ld.task.done() and not ld.cancelled]
        for ld in live:
            # A queued load leaves the line when its wait is cancelled (Ticket.__aenter__);
            # the running one unwinds (frees its GPU buffers, state idle) before it rejects.
            ld.cancelled = True
            ld.task.cancel()
        return bool(live)

    # The options init() itself takes (opts keys); the rest go to the platform's load.
    RUNTIME_OPTIONS = ("context_length", "kv_dtype", "backend", "cpu_fallback", "threads")

    @staticmethod
    def _options(context_length, kv_dtype, backend, cpu_fallback, threads, extra) -> dict:
        check_backend(backend)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        return {"context_length": context_length, "kv_dtype": kv_dtype, "backend": backend,
                "cpu_fallback": bool(cpu_fallback), "threads": threads, **extra}

    @staticmethod
    def _load_result(loaded) -> dict:
        return {"model": loaded.entry.id, "load_s": loaded.load_s,
                "backend": getattr(loaded.model, "backend", "webgpu")}

    async def unload(self) -> None:
        """Abort the running and queued requests, free every GPU buffer of the model; idle."""
        self._abort_pending()
        async with self._turns.take():
            self._unload_now()
            self._set(state="idle", model=None, error=None, progress=0.0)

    def _unload_now(self) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is not None:
            loaded.model.destroy()
            self._set(state="idle", model=None, progress=0.0, backend=None)
            if getattr(loaded.model, "backend", "webgpu") == "webgpu":
                _release_kernel_caches(self._dev)
                left = self._dev.ledger.total - self.baseline
                if left:
                    log.warning("unload left %d bytes on the GPU ledger: %s", left,
                                self._dev.ledger.snapshot())
        self._memory.reset()

    async def _load(self, entry, opts: dict, hf_token, cpu_reason: str | None = None) -> dict:
        """Load `entry` on the backend choose_backend picks (the CPU, for `cpu_reason`)."""
        ctx = opts.get("context_length") or getattr(entry, "context_length", None)
        choice = failed = None
        try:
            choice = (BackendChoice("cpu", cpu_reason) if cpu_reason else
                      await choose_backend(self, entry, opts["backend"], ctx, opts["kv_dtype"]))
        except Exception as e:  # noqa: BLE001 - reported below, after the "loading" event
            failed = e
        self._set(state="loading", model=entry.id, progress=0.0, error=None, backend=choice)
        self._events.emit("loading", {"model": entry.id})
        if failed is not None:
            self._fail(failed, entry.id)
            raise failed
        if choice.name == "cpu":
            self._events.emit("backend", {"model": entry.id, "backend": "cpu",
                                          "reason": choice.reason})
        t0 = time.perf_counter()

        def on_progress(d: dict) -> None:
            self._progress = d["progress"]
            self._events.emit("progress", d)

        tracker = LoadProgress(on_progress)
        model = None
        try:
            if choice.name == "cpu":
                model, tok = await self.platform.load_cpu(
                    entry, tracker.platform, context_length=opts.get("context_length"),
                    hf_token=hf_token, threads=opts.get("threads"))
            else:
                model, tok = await self._load_webgpu(entry, opts, hf_token, ctx, tracker)
            chat = await ChatFormat.load(tok)
            await self._warm_up(model, tok, tracker)
        except BaseException as e:
            if model is not None:
                model.destroy()
            if isinstance(e, asyncio.CancelledError):
                if choice.name == "webgpu" and self._dev is not None:
                    _release_kernel_caches(self._dev)
                self._set(state="idle", model=None, progress=0.0, backend=None)
            else:
                self._fail(e, entry.id)
            raise
        if getattr(entry, "user_added", False) and getattr(entry, "arch", None) is None:
            try:
                entry = entry.with_config(model.config)
                (await self.catalog()).replace(entry)
                await self._save_user_models()          # the estimate, for the next visit
            except Exception:  # noqa: BLE001 - only the catalog's estimate is affected
                log.exception("could not record the architecture of %s", entry.id)
        load_s = time.perf_counter() - t0
        self._serial += 1
        eos = tok.eos_id
        self._loaded = Loaded(entry, model, tok, chat, load_s, dict(opts), self._serial,
                              chat_stop=chat.stop_ids(),
                              raw_stop={eos} if eos is not None else set())
        self._set(state="ready", progress=1.0)
        self._events.emit("ready", {"model": entry.id, "load_s": load_s,
                                    "backend": choice.name})
        self._memory_check()
        return self._load_result(self._loaded)

    async def _load_webgpu(self, entry, opts: dict, hf_token, ctx, tracker):
        dev = await self._device()
        self._memory.before(entry, dev, self.platform.memory_budget(dev), ctx,
                            opts.get("kv_dtype", "f16"))
        extra = {k: v for k, v in opts.items()
                 if k not in self.RUNTIME_OPTIONS and v is not None}
        return await self.platform.load(dev, entry, tracker.platform, context_length=ctx,
                                        kv_dtype=opts["kv_dtype"], hf_token=hf_token, **extra)

    async def fall_back_to_cpu(self, lost: Loaded, reason: str) -> bool:
        """After a lost GPU device (called by the request that hit it, inside its turn): load
        `lost`, the model the device took, on the CPU backend when its init allowed it
        (cpu_fallback). True when the CPU model is ready."""
        if not lost.options.get("cpu_fallback") or self.platform.cpu_unavailable():
            return False
        try:
            await self._load(lost.entry, lost.options, None, cpu_reason=reason)
        except Exception:  # noqa: BLE001 - the error event and state say what happened
            log.exception("the CPU fallback of %s failed", lost.entry.id)
            return False
        return True

    async def _warm_up(self, model, tok, tracker: LoadProgress) -> None:
        """Compile the first prefill's and decode's pipelines now (phase "compile") rather than
        in the first request; the KV cache is then forgotten."""
        tracker.compile(0, 2, "Compiling GPU kernels")
        first = tok.bos_id if tok.bos_id is not None else 0
        step = 0
        async for _ in model.generate([first], SamplingParams(temperature=0.0), max_tokens=2):
            step += 1
            tracker.compile(step, 2, "Compiling GPU kernels" if step < 2 else "Ready")
        model.reset()
        tracker.compile(2, 2, "Ready")

    def _memory_check(self) -> None:
        dev = self._dev
        self._memory.check(dev, self.platform.memory_budget(dev) if dev is not None else None)
