"""The kernel harness's runner inside Pyodide (page or Node): run async Python code sent from the
host with numpy-free inputs, return outputs as JSON. Used by app/bench/browser.py's `run_py`.

    payload = {"name": {"b64": ...} | JSON value, ...}     arrays arrive as bytes in `inputs`
    code sees: dev (the page's app.gpu device, opened once), inputs, out(name, data, dtype, shape)
    code may set `result` to a JSON-able value; print() output is returned as "stdout"
"""
from __future__ import annotations

import base64
import io
import json
import traceback
from contextlib import redirect_stdout

_device = None


async def device():
    """app.gpu's device for this page (the browser backend), opened on first use."""
    global _device
    if _device is None:
        from app.gpu import open_device
        _device = await open_device()
    return _device


async def run(code: str, payload: str = "{}") -> str:
    from pyodide.code import eval_code_async

    inputs = {k: base64.b64decode(v["b64"]) if isinstance(v, dict) and "b64" in v else v
              for k, v in json.loads(payload).items()}
    outputs = {}

    def out(name: str, data, dtype: str = "float32", shape=None) -> None:
        outputs[name] = {"b64": base64.b64encode(bytes(data)).decode(), "dtype": dtype,
                         "shape": None if shape is None else list(shape)}

    ns = {"__name__": "__harness__", "inputs": inputs, "out": out, "result": None}
    stdout, error = io.StringIO(), None
    try:
        ns["dev"] = await device()
        with redirect_stdout(stdout):
            await eval_code_async(code, globals=ns, filename="<harness>")
    except BaseException:  # noqa: BLE001 - reported to the host with its traceback
        error = traceback.format_exc()
    return json.dumps({"outputs": outputs, "stdout": stdout.getvalue(), "result": ns.get("result"),
                       "error": error})
