"""Dashboard view: writes into the skeleton that index.html renders before Python starts.

Only text is ever written (textContent), never HTML, so nothing here can inject markup.
"""
from __future__ import annotations


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


class Dashboard:
    def __init__(self, document):
        self.doc = document
        self.names: dict[str, str] = {}       # model id -> display name (the model picker's)

    def _set(self, element_id: str, text: str, cls: str | None = None) -> None:
        el = self.doc.getElementById(element_id)
        el.textContent = text
        if cls is not None:
            el.className = cls

    def status(self, text: str, state: str = "busy") -> None:
        """state: busy | ok | error."""
        self._set("status-text", text)
        self.doc.getElementById("status").className = f"status status-{state}"

    def error(self, title: str, text: str) -> None:
        self._set("banner-title", title)
        self._set("banner-text", text)
        self.doc.getElementById("banner").hidden = False
        self.status(title, "error")

    def notice(self, title: str, text: str) -> None:
        """The banner as information (not an error)."""
        self.error(title, text)
        self.doc.getElementById("banner").classList.add("banner-info")

    def backend(self, detail: dict) -> None:
        """The backend in use ("backend" events: the CPU backend chosen, and why)."""
        if detail.get("backend") == "cpu":
            self._set("rt-backend", "cpu · llama.cpp in WebAssembly (wllama), engine in a worker"
                      + (f" — {detail['reason']}" if detail.get("reason") else ""))

    def python(self, version: str) -> None:
        self._set("rt-python", version)

    def runtime(self, gpu: dict) -> None:
        """Adapter, features and limits: check_webgpu()'s dict (the engine worker's device)."""
        a = gpu.get("adapter") or {}
        name = a.get("description") or " ".join(
            x for x in (a.get("vendor"), a.get("architecture"), a.get("device")) if x)
        self._set("rt-adapter", (name or "unknown adapter") + (" (CPU)" if a.get("is_cpu") else ""))
        self._set("rt-backend", f"{gpu.get('backend', 'webgpu')} · browser, engine in a worker")
        self._set("rt-features", ", ".join(sorted(gpu.get("features") or [])) or "none (f32 path)")
        binding = (gpu.get("limits") or {}).get("maxStorageBufferBindingSize")
        self._set("rt-binding", _mib(binding) if binding else "—")

    def engine_status(self, status: dict) -> None:
        """The status bar from the runtime's status (idle | loading | ready | generating | error)."""
        state, model = status.get("state"), status.get("model")
        model = self.names.get(model, model)
        if state == "loading":
            self.status(f"Loading {model or 'model'}… {100 * (status.get('progress') or 0):.0f}%")
        elif state == "ready":
            on_cpu = " (CPU)" if status.get("backend") == "cpu" else ""
            self.status(f"Ready — {model}{on_cpu}", "ok")
        elif state == "generating":
            self.status(f"Generating with {model}…")
        elif state == "error":
            err = status.get("error") or {}
            self.status(f"{err.get('name', 'Error')}: {err.get('message', '')}", "error")
        else:
            self.status("Ready — no model loaded", "ok")

    def progress(self, detail: dict) -> None:
        text = detail.get("text") or detail.get("phase") or ""
        self.status(f"{100 * (detail.get('progress') or 0):.0f}% · {text}")

    def selftest(self, result: dict) -> None:
        if result["ok"]:
            self._set("rt-selftest", f"passed (matmul {result['m']}x{result['k']}x{result['n']}, "
                                     f"max error {result['max_abs_err']:.1e})", "pass")
        else:
            self._set("rt-selftest", f"FAILED: max error {result['max_abs_err']:.2e} > "
                                     f"{result['tolerance']:.1e}", "fail")

    def versions(self, versions: dict) -> None:
        self._set("rt-versions", ", ".join(f"{k.split('/')[-1]} {v}" for k, v in sorted(versions.items())))
