"""Dashboard view: writes into the skeleton that index.html renders before Python starts.

Only text is ever written (textContent), never HTML, so nothing here can inject markup.
"""
from __future__ import annotations


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


class Dashboard:
    def __init__(self, document):
        self.doc = document

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

    def python(self, version: str) -> None:
        self._set("rt-python", version)

    def runtime(self, dev) -> None:
        info = dev.info
        name = info.description or " ".join(x for x in (info.vendor, info.architecture, info.device) if x)
        self._set("rt-adapter", name or "unknown adapter")
        self._set("rt-backend", info.backend)
        self._set("rt-features", ", ".join(sorted(dev.features)) or "none (f32 path)")
        self._set("rt-binding", _mib(dev.limits["maxStorageBufferBindingSize"]))
        mem = dev.memory()
        self._set("gpu-memory", f"{_mib(mem['total'])} live, peak {_mib(mem['peak'])}")

    def selftest(self, result: dict) -> None:
        if result["ok"]:
            self._set("rt-selftest", f"passed (matmul {result['m']}x{result['k']}x{result['n']}, "
                                     f"max error {result['max_abs_err']:.1e})", "pass")
        else:
            self._set("rt-selftest", f"FAILED: max error {result['max_abs_err']:.2e} > "
                                     f"{result['tolerance']:.1e}", "fail")

    def versions(self, versions: dict) -> None:
        self._set("rt-versions", ", ".join(f"{k.split('/')[-1]} {v}" for k, v in sorted(versions.items())))
