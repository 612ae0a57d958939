// run.mjs: the benchmarks of app/bench under Node.js, through Dawn (the WebGPU implementation
// inside Chrome, npm package `webgpu`) and the vendored Pyodide, i.e. the engine's browser
// backend (app/gpu/browser.py) without a browser.
//
//   npm install --no-save webgpu@0.6.2     # not a dependency of the page: never vendored
//   python build.py                         # dist/py/localllm.zip and dist/vendor/pyodide
//   node app/bench/node/run.mjs kernels [--small] [--layouts ...] [--shapes ...]
//   node app/bench/node/run.mjs dispatch [--n 300]
//   node app/bench/node/run.mjs prefill [--shapes ...] [--layouts ...]   (app/bench/prefill.py)
//   node app/bench/node/run.mjs sgmat-check   (matmul_sgmat oracle, app/bench/sgmat_check.py;
//       needs LOCALLLM_DAWN="...;enable-dawn-features=allow_unsafe_apis")
//   node app/bench/node/run.mjs model --model PATH.gguf [--prompt-tokens 512] [--json OUT] ...
//       (app/bench/model.py; the file is read by Node: a Uint8Array below 2 GiB, above that a
//       Blob-like object read slice by slice with fs.readSync; --json is written here, by Node)
//
// Dawn options (create([...]) of the `webgpu` package) come from LOCALLLM_DAWN, ';'-separated,
// default "disable-dawn-features=timestamp_quantization" (unquantized GPU timestamps), e.g.
//   LOCALLLM_DAWN='backend=vulkan;adapter=NVIDIA H100 80GB HBM3' node app/bench/node/run.mjs kernels
import {
  existsSync, fstatSync, openSync, readFileSync, readSync, statSync, writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { create, globals } from "webgpu";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const dist = join(root, "dist");
const zip = join(dist, "py", "localllm.zip");
const pyodideDir = join(dist, "vendor", "pyodide");
if (!existsSync(zip) || !existsSync(join(pyodideDir, "pyodide.mjs"))) {
  console.error(`${zip} or ${pyodideDir} is missing: run \`python build.py\` first`);
  process.exit(2);
}

const dawnOptions = (process.env.LOCALLLM_DAWN ?? "disable-dawn-features=timestamp_quantization")
  .split(";").filter(Boolean);
Object.assign(globalThis, globals);  // GPUBufferUsage and friends, as in a browser
Object.defineProperty(globalThis, "navigator", {
  value: { userAgent: `Node.js ${process.version} (Dawn, npm webgpu)`, gpu: create(dawnOptions) },
  configurable: true, writable: true,
});

const { loadPyodide } = await import(pathToFileURL(join(pyodideDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: pyodideDir + "/" });
// A plain Uint8Array: Pyodide does not take Node's Buffer subclass.
py.unpackArchive(new Uint8Array(readFileSync(zip)), "zip", { extractDir: "/home/pyodide" });

// LOCALLLM_* variables (engine switches such as LOCALLLM_MV_V4) reach Python's os.environ.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("LOCALLLM_")));
py.globals.set("node_env", py.toPy(env));
py.runPython("import os\nos.environ.update(node_env)");

const [command = "kernels", ...args] = process.argv.slice(2);
py.globals.set("bench_args", py.toPy(args));

// model mode: the model file's bytes, handed to Python as a byte source (app/formats/sources.py)
function argValue(name) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : undefined;
}
// The part of a Blob that app.formats.sources.BlobSource uses (size, slice(a, b).arrayBuffer()),
// read with fs.readSync. Not fs.openAsBlob: Node 20.20's reports size mod 2^32 for larger files
// (a 4,656,999,264-byte file gives a 362,031,968-byte Blob).
function fileBlob(path) {
  const fd = openSync(path, "r");
  const size = fstatSync(fd).size;
  return {
    size,
    slice(start, end) {
      return {
        async arrayBuffer() {
          const n = Math.max(0, Math.min(end, size) - start);
          const out = new Uint8Array(n);
          for (let off = 0; off < n;) {
            const k = readSync(fd, out, off, Math.min(n - off, 2 ** 30), start + off);
            if (k <= 0) throw new Error(`${path}: short read at ${start + off}`);
            off += k;
          }
          return out.buffer;
        },
      };
    },
  };
}
if (command === "model" || command === "profile" || command === "check-decode") {
  const path = argValue("--model");
  if (!path || !existsSync(path)) {
    console.error(`model: --model PATH is required and must exist (got ${path})`);
    process.exit(2);
  }
  const size = statSync(path).size;
  if (size >= 2 ** 31) {  // Node's readFileSync stops at 2 GiB: read slices through a Blob-like
    py.globals.set("model_js", fileBlob(path));
    py.globals.set("model_js_kind", "blob");
  } else {
    const buf = readFileSync(path);  // a Buffer: view it as a plain Uint8Array of its own bytes
    const u8 = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength
      ? new Uint8Array(buf.buffer) : new Uint8Array(buf);
    py.globals.set("model_js", u8);
    py.globals.set("model_js_kind", "buffer");
  }
}
const code = {
  kernels: "from app.bench.kernels import main\nawait main(list(bench_args))",
  prefill: "from app.bench.prefill import main\nawait main(list(bench_args))",
  "sgmat-check": "from app.bench import sgmat_check\nfrom app.gpu import open_device\n" +
    "await sgmat_check.run(await open_device())",
  dispatch: "import argparse\nfrom app.gpu import open_device\n" +
    "from app.bench.dispatch import measure, report\n" +
    "ap = argparse.ArgumentParser(prog='run.mjs dispatch')\n" +
    "ap.add_argument('--n', type=int, default=300)\n" +
    "print(report(await measure(await open_device(), ap.parse_args(list(bench_args)).n)))",
  model: "import json\nfrom app.bench.model import main\n" +
    "from app.formats.sources import BlobSource, JSBufferSource\n" +
    "src = BlobSource(model_js) if model_js_kind == 'blob' else JSBufferSource(model_js)\n" +
    "json.dumps(await main(list(bench_args), source=src))",
  profile: "import argparse\nfrom app.bench import profile\nfrom app.gpu import open_device\n" +
    "from app.formats.sources import BlobSource, JSBufferSource\n" +
    "src = BlobSource(model_js) if model_js_kind == 'blob' else JSBufferSource(model_js)\n" +
    "await profile.run(profile.parse(list(bench_args)), await open_device(), src)",
  "check-decode": "from app.bench import check_decode\nfrom app.formats.sources import BlobSource, JSBufferSource\n" +
    "src = BlobSource(model_js) if model_js_kind == 'blob' else JSBufferSource(model_js)\n" +
    "r = await check_decode.run(check_decode.parse(list(bench_args)), None, src)\n" +
    "import sys\nif not r['ok']: raise SystemExit('check-decode failed')",
}[command];
if (!code) {
  console.error(`unknown command ${command}: use kernels, dispatch or model`);
  process.exit(2);
}
try {
  const out = await py.runPythonAsync(`import sys\nsys.path.insert(0, "/home/pyodide")\n${code}`);
  const jsonPath = command === "model" ? argValue("--json") : undefined;
  if (jsonPath) {
    writeFileSync(jsonPath, out);
    console.log(`wrote ${jsonPath}`);
  }
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
process.exit(0);
