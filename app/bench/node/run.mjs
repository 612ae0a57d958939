// run.mjs: the benchmarks of app/bench under Node.js, through Dawn (the WebGPU implementation
// inside Chrome, npm package `webgpu`) and the vendored Pyodide, i.e. the engine's browser
// backend (app/gpu/browser.py) without a browser.
//
//   npm install --no-save webgpu@0.6.2     # not a dependency of the page: never vendored
//   python build.py                         # dist/py/localllm.zip and dist/vendor/pyodide
//   node app/bench/node/run.mjs kernels [--small] [--layouts ...] [--shapes ...]
//   node app/bench/node/run.mjs dispatch [--n 300]
//
// Dawn options (create([...]) of the `webgpu` package) come from LOCALLLM_DAWN, ';'-separated,
// default "disable-dawn-features=timestamp_quantization" (unquantized GPU timestamps), e.g.
//   LOCALLLM_DAWN='backend=vulkan;adapter=NVIDIA H100 80GB HBM3' node app/bench/node/run.mjs kernels
import { existsSync, readFileSync } from "node:fs";
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

const [command = "kernels", ...args] = process.argv.slice(2);
py.globals.set("bench_args", py.toPy(args));
const code = {
  kernels: "from app.bench.kernels import main\nawait main(list(bench_args))",
  dispatch: "import argparse\nfrom app.gpu import open_device\n" +
    "from app.bench.dispatch import measure, report\n" +
    "ap = argparse.ArgumentParser(prog='run.mjs dispatch')\n" +
    "ap.add_argument('--n', type=int, default=300)\n" +
    "print(report(await measure(await open_device(), ap.parse_args(list(bench_args)).n)))",
}[command];
if (!code) {
  console.error(`unknown command ${command}: use kernels or dispatch`);
  process.exit(2);
}
try {
  await py.runPythonAsync(`import sys\nsys.path.insert(0, "/home/pyodide")\n${code}`);
} catch (e) {
  console.error(String(e));
  process.exit(1);
}
process.exit(0);
