// sgmat_probe.mjs: does this Dawn + driver offer WebGPU subgroup matrices (tensor cores)?
// No Pyodide: asks the adapter for its features and GPUAdapterInfo.subgroupMatrixConfigs, opens a
// device with "chromium-experimental-subgroup-matrix", then for every listed config compiles and
// runs one subgroup-sized C = A x B through subgroupMatrixLoad/MultiplyAccumulate/Store and checks
// it against a float64 (or exact integer) product on the CPU.
//
//   node app/bench/node/sgmat_probe.mjs            # Dawn options as run.mjs (LOCALLLM_DAWN)
import { create, globals } from "webgpu";

Object.assign(globalThis, globals);
const FEATURE = "chromium-experimental-subgroup-matrix";
const optionSets = [
  (process.env.LOCALLLM_DAWN ?? "disable-dawn-features=timestamp_quantization").split(";").filter(Boolean),
  ["enable-dawn-features=allow_unsafe_apis"],
];

/** WGSL type of one element in storage for a component type, and elements per 32-bit word. */
function storageOf(t) {
  return { f32: ["f32", 1], f16: ["f16", 1], i32: ["i32", 1], u32: ["u32", 1], i8: ["i32", 4], u8: ["u32", 4] }[t];
}

/** One subgroup computes C (M x N) = A (M x K) * B (K x N), all row-major in storage. */
function shaderFor(c, sgMax) {
  const [sa] = storageOf(c.componentType);
  const [sr] = storageOf(c.resultComponentType);
  const f16 = c.componentType === "f16" || c.resultComponentType === "f16";
  return `enable chromium_experimental_subgroup_matrix;
${f16 ? "enable f16;" : ""}
@group(0) @binding(0) var<storage, read> a: array<${sa}>;
@group(0) @binding(1) var<storage, read> b: array<${sa}>;
@group(0) @binding(2) var<storage, read_write> c: array<${sr}>;
@compute @workgroup_size(${sgMax})
fn main() {
  let l = subgroupMatrixLoad<subgroup_matrix_left<${c.componentType}, ${c.K}, ${c.M}>>(&a, 0u, false, ${c.K}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<${c.componentType}, ${c.N}, ${c.K}>>(&b, 0u, false, ${c.N}u);
  var acc = subgroup_matrix_result<${c.resultComponentType}, ${c.N}, ${c.M}>();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore(&c, 0u, acc, false, ${c.N}u);
}`;
}

function f16bits(x) {  // round-to-nearest f32 -> f16 bits for small exact values
  const f = new Float32Array([x]); const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000; const e = ((u >>> 23) & 0xff) - 127 + 15; const m = u & 0x7fffff;
  if (x === 0) return s;
  return s | (e << 10) | Math.round(m / 8192);
}

function pack(t, vals) {
  if (t === "f32") return new Float32Array(vals);
  if (t === "i32") return new Int32Array(vals);
  if (t === "u32") return new Uint32Array(vals);
  if (t === "f16") { const n = vals.length + (vals.length & 1); return new Uint16Array(n).map((_, i) => i < vals.length ? f16bits(vals[i]) : 0); }
  const n = Math.ceil(vals.length / 4) * 4;
  return t === "i8" ? new Int8Array(n).map((_, i) => vals[i] ?? 0) : new Uint8Array(n).map((_, i) => vals[i] ?? 0);
}

function unpack(t, buf, n) {
  if (t === "f16") {
    const u = new Uint16Array(buf); const out = [];
    for (let i = 0; i < n; i++) {
      const h = u[i]; const s = h & 0x8000 ? -1 : 1; const e = (h >> 10) & 31; const m = h & 1023;
      out.push(e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15));
    }
    return out;
  }
  const C = { f32: Float32Array, i32: Int32Array, u32: Uint32Array, i8: Int8Array, u8: Uint8Array }[t];
  return Array.from(new C(buf).slice(0, n));
}

async function runConfig(device, c, sgMax) {
  const { M, N, K } = c;
  const small = (i) => ((i * 7 + 3) % 9) - 4;  // exact in every type (u8: shifted below)
  const av = Array.from({ length: M * K }, (_, i) => c.componentType === "u8" ? small(i) + 4 : small(i) / (c.componentType.startsWith("f") ? 4 : 1));
  const bv = Array.from({ length: K * N }, (_, i) => c.componentType === "u8" ? small(i + 5) + 4 : small(i + 5) / (c.componentType.startsWith("f") ? 2 : 1));
  const ref = [];
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) { let s = 0; for (let k = 0; k < K; k++) s += av[i * K + k] * bv[k * N + j]; ref.push(s); }
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code: shaderFor(c, sgMax) });
  const info = await module.getCompilationInfo();
  const msgs = info.messages.filter((m) => m.type === "error").map((m) => m.message);
  if (msgs.length) { await device.popErrorScope(); return `compile error: ${msgs.join(" | ")}`; }
  const pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } });
  const mk = (arr, usage) => {
    const size = Math.max(16, Math.ceil(arr.byteLength / 4) * 4);
    const buf = device.createBuffer({ size, usage: usage | GPUBufferUsage.COPY_DST });
    const padded = new Uint8Array(size); padded.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    device.queue.writeBuffer(buf, 0, padded); return buf;
  };
  const rbytes = Math.max(16, Math.ceil(M * N * ({ f16: 2, i8: 1, u8: 1 }[c.resultComponentType] ?? 4) / 4) * 4);
  const A = mk(pack(c.componentType, av), GPUBufferUsage.STORAGE);
  const B = mk(pack(c.componentType, bv), GPUBufferUsage.STORAGE);
  const Cb = mk(new Uint8Array(rbytes).fill(0x7f), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC);
  const R = device.createBuffer({ size: rbytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [A, B, Cb].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const enc = device.createCommandEncoder(); const pass = enc.beginComputePass();
  pass.setPipeline(pipeline); pass.setBindGroup(0, bg); pass.dispatchWorkgroups(1); pass.end();
  enc.copyBufferToBuffer(Cb, 0, R, 0, rbytes); device.queue.submit([enc.finish()]);
  const err = await device.popErrorScope();
  if (err) return `validation error: ${err.message}`;
  await R.mapAsync(GPUMapMode.READ);
  const got = unpack(c.resultComponentType, R.getMappedRange().slice(0), M * N); R.unmap();
  let maxErr = 0; for (let i = 0; i < M * N; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - ref[i]));
  return `ran; max |C - ref| = ${maxErr} (ref max ${Math.max(...ref.map(Math.abs))})`;
}

for (const opts of optionSets) {
  console.log(`=== create(${JSON.stringify(opts)})`);
  const gpu = create(opts);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) { console.log("no adapter"); continue; }
  const info = adapter.info;
  console.log(`adapter: ${info.vendor} | ${info.architecture} | ${info.device} | ${info.description} | subgroups ${info.subgroupMinSize}-${info.subgroupMaxSize}`);
  const features = [...adapter.features].sort();
  console.log(`features: ${features.join(", ")}`);
  const configs = info.subgroupMatrixConfigs ? [...info.subgroupMatrixConfigs] : undefined;
  console.log(`subgroupMatrixConfigs: ${configs === undefined ? "(attribute absent)" : JSON.stringify(configs.map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })))}`);
  if (!adapter.features.has(FEATURE)) { console.log(`${FEATURE}: NOT offered by this adapter`); continue; }
  const want = [FEATURE, "subgroups", "shader-f16", "timestamp-query"].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits: { maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize } });
  console.log(`device features: ${[...device.features].sort().join(", ")}; workgroup storage ${device.limits.maxComputeWorkgroupStorageSize}`);
  for (const c of configs ?? []) {
    const tag = `${c.componentType}->${c.resultComponentType} M${c.M} N${c.N} K${c.K}`;
    try { console.log(`${tag}: ${await runConfig(device, c, info.subgroupMaxSize)}`); } catch (e) { console.log(`${tag}: threw ${e}`); }
  }
  device.destroy();
}
process.exit(0);
