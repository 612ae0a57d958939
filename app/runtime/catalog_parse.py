"""Reading catalog entries: presets (catalog.json, validated field by field; CatalogError names
the entry and the field) and user models (URLs only: format from the file names, a stable id
derived from the URLs, family "unknown" until the model is loaded).

Preset entry (catalog.json "models"):

    id                 lowercase, [a-z0-9._-]         name        display name
    family             app.models.config FAMILIES      params      parameter count (int > 0)
    quantization       "Q4_K_M", "Q8_0", "F16", ...   format      "gguf" | "safetensors"
    files              [{url, size, sha256, size_exact}]   url: https://huggingface.co/<owner>/
                       <repo>/resolve/<revision>/<file>, or (bundled) relative to the site;
                       size: bytes or null; sha256: 64 hex or null; size_exact: default true
    arch               {n_layers, n_heads, n_kv_heads, head_dim, hidden, ffn, vocab,
                        max_context, tied_embeddings}
    context_length     default context, <= arch.max_context
    required_features  WebGPU features it cannot run without ([] for every preset: the f32 path
                       needs none); optional_features: ones that make it faster
    license, license_url, gated, cpu_ok, default, bundled
"""
from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote, urljoin, urlsplit

from app.models.config import FAMILIES
from app.store.download import FileSpec

from .catalog_model import HF_FILE_URL, CatalogError, CatalogModel
from .model_memory import Arch

FORMATS = ("gguf", "safetensors")
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
QUANT_RE = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[0-9A-Z]+)*|BF16|F16|F32)(?![A-Za-z0-9])",
                      re.IGNORECASE)
SAFETENSORS_INDEX = "model.safetensors.index.json"
REQUIRED = ("id", "name", "family", "params", "quantization", "format", "files", "arch",
            "context_length", "required_features", "license", "gated", "cpu_ok", "default",
            "bundled")


def parse_preset(d: dict, index: int, base_url: str | None = None) -> CatalogModel:
    """A validated CatalogModel from one catalog.json entry (CatalogError on any bad field)."""
    if not isinstance(d, dict):
        raise CatalogError(index, "<entry>", f"must be an object, got {type(d).__name__}")
    entry = d.get("id", index)
    for key in REQUIRED:
        if key not in d:
            raise CatalogError(entry, key, "is missing")

    def check(key, ok, want):
        if not ok:
            raise CatalogError(entry, key, f"must be {want}, got {d.get(key)!r}")

    check("id", isinstance(d["id"], str) and ID_RE.match(d["id"]), "a lowercase id [a-z0-9._-]")
    check("name", isinstance(d["name"], str) and d["name"].strip(), "a non-empty string")
    check("family", d["family"] in FAMILIES, f"one of {', '.join(FAMILIES)}")
    check("params", _posint(d["params"]), "a positive int")
    check("quantization", isinstance(d["quantization"], str) and d["quantization"], "a string")
    check("format", d["format"] in FORMATS, "'gguf' or 'safetensors'")
    for key in ("gated", "cpu_ok", "default", "bundled"):
        check(key, isinstance(d[key], bool), "true or false")
    check("license", isinstance(d["license"], str) and d["license"], "a license id")
    if d.get("license_url") is not None:
        check("license_url", str(d["license_url"]).startswith("https://"), "an https URL")
    for key in ("required_features", "optional_features"):
        v = d.get(key, [])
        check(key, isinstance(v, list) and all(isinstance(f, str) for f in v),
              "a list of WebGPU feature names")
    arch = _arch(entry, d["arch"])
    check("context_length", _posint(d["context_length"])
          and d["context_length"] <= arch.max_context, f"a positive int <= arch.max_context "
          f"({arch.max_context})")
    files, sizes, exact = _files(entry, d["files"], d["bundled"], base_url)
    return CatalogModel(
        d["id"], d["name"], d["format"], d["bundled"], files, family=d["family"],
        params=d["params"], quantization=d["quantization"], arch=arch,
        context_length=d["context_length"], required_features=tuple(d["required_features"]),
        optional_features=tuple(d.get("optional_features", ())), license=d["license"],
        license_url=d.get("license_url"), gated=d["gated"], cpu_ok=d["cpu_ok"],
        default=d["default"], file_sizes=sizes, size_exact=exact)


def _posint(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _arch(entry, a) -> Arch:
    if not isinstance(a, dict):
        raise CatalogError(entry, "arch", f"must be an object, got {a!r}")
    for key in Arch.FIELDS:
        if not _posint(a.get(key)):
            raise CatalogError(entry, f"arch.{key}", f"must be a positive int, got {a.get(key)!r}")
    tied = a.get("tied_embeddings", True)
    if not isinstance(tied, bool):
        raise CatalogError(entry, "arch.tied_embeddings", f"must be true or false, got {tied!r}")
    if a["n_heads"] % a["n_kv_heads"]:
        raise CatalogError(entry, "arch.n_kv_heads",
                           f"must divide n_heads ({a['n_heads']}), got {a['n_kv_heads']}")
    return Arch(*(a[k] for k in Arch.FIELDS), tied_embeddings=tied)


def _files(entry, files, bundled: bool, base_url: str | None):
    if not isinstance(files, list) or not files:
        raise CatalogError(entry, "files", f"must be a non-empty list, got {files!r}")
    specs, sizes, all_exact = [], [], True
    for i, f in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(f, dict):
            raise CatalogError(entry, where, f"must be an object, got {f!r}")
        url, size, sha = f.get("url"), f.get("size"), f.get("sha256")
        exact = f.get("size_exact", True)
        if not isinstance(url, str) or not url:
            raise CatalogError(entry, f"{where}.url", f"must be a URL, got {url!r}")
        if bundled:
            if urlsplit(url).scheme:
                raise CatalogError(entry, f"{where}.url", f"of a bundled file must be relative to "
                                   f"the site, got {url!r}")
            url = urljoin(base_url, url) if base_url else url
        elif not HF_FILE_URL.match(url):
            raise CatalogError(entry, f"{where}.url", "must be https://huggingface.co/<owner>/"
                               f"<repo>/resolve/<revision>/<file>, got {url!r}")
        if size is not None and not _posint(size):
            raise CatalogError(entry, f"{where}.size", f"must be a positive int or null, got "
                               f"{size!r}")
        if sha is not None and not (isinstance(sha, str) and SHA_RE.match(sha)):
            raise CatalogError(entry, f"{where}.sha256", f"must be 64 lowercase hex digits or "
                               f"null, got {sha!r}")
        if not isinstance(exact, bool):
            raise CatalogError(entry, f"{where}.size_exact", f"must be true or false, got "
                               f"{exact!r}")
        exact = exact and size is not None
        all_exact &= exact
        specs.append(FileSpec(url=url, size=size if exact else None, sha256=sha,
                              name=unquote(url.rsplit("/", 1)[-1])))
        sizes.append(size)
    return tuple(specs), tuple(sizes), all_exact


def quant_of(filename: str) -> str | None:
    """The quantization label in a GGUF file name ("...-Q4_K_M.gguf" -> "Q4_K_M"), if any."""
    found = QUANT_RE.findall(filename.rsplit("/", 1)[-1])
    return found[-1].upper() if found else None


def model_from_urls(urls: list[str], *, name: str | None = None,
                    gated: bool = False) -> CatalogModel:
    """A user model from absolute URLs: one .gguf, or a safetensors checkpoint (config.json and
    model.safetensors or model.safetensors.index.json, plus shards / tokenizer files).
    ValueError (CatalogError) says what is missing."""
    if not urls:
        raise CatalogError("<user model>", "urls", "must name at least one file")
    for u in urls:
        if urlsplit(u).scheme not in ("https", "http", "file") and not u.startswith("/"):
            raise CatalogError("<user model>", "urls", f"must be http(s) URLs (relative ones are "
                               f"resolved against the page) or local paths, got {u!r}")
    names = [unquote(urlsplit(u).path.rsplit("/", 1)[-1]) for u in urls]
    ggufs = [n for n in names if n.lower().endswith(".gguf")]
    if ggufs:
        if len(urls) != 1:
            raise CatalogError("<user model>", "urls", f"a GGUF model is one file; got {names}")
        fmt = "gguf"
    elif "config.json" in names and ("model.safetensors" in names or SAFETENSORS_INDEX in names):
        fmt = "safetensors"
    else:
        raise CatalogError("<user model>", "urls", "must be one .gguf file, or config.json plus "
                           f"model.safetensors (or {SAFETENSORS_INDEX}) and its shards; got "
                           f"{names}")
    model_id = derive_id(urls)
    hf = HF_FILE_URL.match(urls[0])
    label = name or (ggufs[0][:-5] if ggufs else hf.group(1) if hf else model_id)
    files = tuple(FileSpec(url=u, name=n) for u, n in zip(urls, names))
    return CatalogModel(model_id, label, fmt, False, files,
                        quantization=quant_of(ggufs[0]) if ggufs else None, gated=gated,
                        file_sizes=tuple(None for _ in files), size_exact=False, user_added=True)


def derive_id(urls: list[str]) -> str:
    """A stable id for user URLs: the file (or repo) name, slugged, plus 8 hex digits of a hash
    of the sorted URLs (the same URLs always give the same id)."""
    digest = hashlib.sha256("\n".join(sorted(urls)).encode()).hexdigest()[:8]
    ggufs = [u for u in urls if urlsplit(u).path.lower().endswith(".gguf")]
    if ggufs:
        stem = unquote(urlsplit(ggufs[0]).path.rsplit("/", 1)[-1])[:-5]
    else:
        hf = HF_FILE_URL.match(urls[0])
        parts = [unquote(p) for p in urlsplit(urls[0]).path.split("/") if p]
        stem = hf.group(1).split("/")[1] if hf else (parts[-2] if len(parts) > 1 else "model")
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "model"
    return f"{slug[:60]}-{digest}"


# -- user models as stored records (the settings store's "user-models": persist across visits) --
def user_record(m: CatalogModel) -> dict:
    """A user model as a JSON-safe record that from_user_record() turns back into the same
    entry (files keep their cache key: an imported file has no URL, only a key)."""
    sizes = m.file_sizes or tuple(f.size for f in m.files)
    return {"id": m.id, "name": m.name, "format": m.format, "family": m.family,
            "quantization": m.quantization, "gated": m.gated, "size_exact": m.size_exact,
            "imported": m.imported,
            "arch": m.arch.to_dict() if m.arch else None,
            "files": [{"url": f.url or None, "key": f.key, "name": f.name, "size": f.size,
                       "sha256": f.sha256, "size_hint": s} for f, s in zip(m.files, sizes)]}


def from_user_record(d: dict) -> CatalogModel:
    """The CatalogModel of a user_record(); CatalogError names the bad field."""
    if not isinstance(d, dict):
        raise CatalogError("<user model>", "<record>", f"must be an object, got {d!r}")
    entry = d.get("id")
    if not isinstance(entry, str) or not ID_RE.match(entry):
        raise CatalogError(entry, "id", "must be a lowercase id [a-z0-9._-]")
    if d.get("format") not in FORMATS:
        raise CatalogError(entry, "format", f"must be one of {FORMATS}, got {d.get('format')!r}")
    files = d.get("files")
    if not isinstance(files, list) or not files:
        raise CatalogError(entry, "files", "must be a non-empty list")
    specs, sizes = [], []
    for i, f in enumerate(files):
        url, key = (f or {}).get("url"), (f or {}).get("key")
        if not (isinstance(url, str) and urlsplit(url).scheme in ("http", "https", "file")
                or isinstance(key, str) and key):
            raise CatalogError(entry, f"files[{i}]", "needs an http(s) URL or a cache key")
        size = f.get("size")
        specs.append(FileSpec(url=url or "", size=size if _posint(size) else None,
                              sha256=f.get("sha256"), name=f.get("name"), key=key))
        hint = f.get("size_hint")
        sizes.append(hint if _posint(hint) else None)
    arch = _arch(entry, d["arch"]) if d.get("arch") is not None else None
    family = d.get("family") if d.get("family") in FAMILIES else "unknown"
    label = d.get("name") if isinstance(d.get("name"), str) and d.get("name") else entry
    return CatalogModel(entry, label, d["format"], False, tuple(specs), family=family,
                        quantization=d.get("quantization"), arch=arch,
                        gated=bool(d.get("gated")), file_sizes=tuple(sizes),
                        size_exact=bool(d.get("size_exact")) and all(sizes),
                        user_added=True, imported=bool(d.get("imported")))


def import_id(filename: str, size: int) -> str:
    """A stable id for a local file the user imports: its slugged name plus 8 hex digits of a
    hash of (name, size); importing the same file again replaces the earlier copy."""
    digest = hashlib.sha256(f"import\n{filename}\n{size}".encode()).hexdigest()[:8]
    stem = filename[:-5] if filename.lower().endswith(".gguf") else filename
    slug = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._") or "model"
    return f"{slug[:60]}-{digest}"
