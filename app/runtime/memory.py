"""Memory warnings: the catalog's estimate before a load, and the allocation ledger after.

    watch = MemoryWatch(emit)          # emit(detail) fires a "memory-warning" event
    watch.before(entry, dev, budget, context_length, kv_dtype)   # before reading any weight
    watch.check(dev, budget)           # after a load and after each request
    watch.reset()                      # after an unload

A warning fires above WARN_AT of the platform's budget (Platform.memory_budget; None = unknown:
no warnings). After a load it fires once per crossing: again only once the ledger has dropped
below the threshold (or the model was unloaded).
"""
from __future__ import annotations

WARN_AT = 0.9
MiB = 1 << 20
CPU_PREFILL_CHUNK = 64  # app/models/model.py CPU_PREFILL_BUCKETS[-1]; 512 on GPUs
GPU_PREFILL_CHUNK = 512


class MemoryWatch:
    def __init__(self, emit):
        self._emit = emit
        self._warned = False

    def _warn(self, used: int, budget: int, text: str) -> None:
        self._emit({"used_bytes": int(used), "budget_bytes": int(budget), "text": text})

    def before(self, entry, dev, budget: int | None, context_length, kv_dtype: str) -> None:
        """Warn when the entry's estimated need (CatalogModel.memory_bytes) passes WARN_AT."""
        if not budget or not hasattr(entry, "memory_bytes"):
            return
        chunk = CPU_PREFILL_CHUNK if dev.is_cpu else GPU_PREFILL_CHUNK
        need = entry.memory_bytes(context_length, kv_dtype, chunk)
        if need and need > WARN_AT * budget:
            self._warn(need, budget, f"{entry.name} needs about {need / MiB:,.0f} MiB of GPU "
                       f"memory; this device allows about {budget / MiB:,.0f} MiB. Loading may "
                       "fail or slow everything down: pick a smaller model or a shorter context.")

    def check(self, dev, budget: int | None) -> None:
        """Warn when the ledger total has crossed WARN_AT of the budget since the last check."""
        if dev is None or not budget:
            return
        used = dev.ledger.total
        if used <= WARN_AT * budget:
            self._warned = False
        elif not self._warned:
            self._warned = True
            self._warn(used, budget, f"GPU memory in use: {used / MiB:,.0f} MiB of about "
                       f"{budget / MiB:,.0f} MiB. Unload the model or use a shorter context if "
                       "the system slows down.")

    def reset(self) -> None:
        self._warned = False
