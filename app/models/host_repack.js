// host_repack.js: raw GGUF blocks -> the aligned internal layouts of app/kernels/layouts.py, on
// the CPU, for CPU adapters (app/models/host_repack.py says when and why). The same byte moves as
// shaders/repack.wgsl, and the same m = -8 d / -16 d, computed exactly on the f16 bits.
//
// app/models/host_repack.py evaluates this file once with pyodide.code.run_js; its value is the
// function below.
//
//   type   "Q4_0" | "Q5_0" | "Q8_0" | "Q6_K"
//   src    Uint8Array   whole raw blocks (any byte offset; an odd one costs a copy)
//   dst    Uint8Array   byte offset a multiple of 4, exactly the repacked size:
//                       Q4_0 18 -> 20, Q5_0 22 -> 24, Q8_0 34 -> 36, Q6_K 210 -> 212 bytes/block
(() => {
  // f16 bits of -(f16 h) * 2^k, exact whenever the result is a finite f16 (as the shader's
  // pack2x16float); overflow gives -inf (the shader's result is undefined there).
  const negScaled = (h, k) => {
    const s = (h & 0x8000) ^ 0x8000;
    let e = (h >> 10) & 31, m = h & 0x3ff;
    if (e === 31) return s | 0x7c00 | m;                 // inf, nan
    if (e === 0) {
      if (m === 0) return s;                             // -0 for +0, +0 for -0
      while (!(m & 0x400)) { m <<= 1; e -= 1; }          // subnormal: normalize
      e += 1;
      m &= 0x3ff;
    }
    e += k;
    if (e >= 31) return s | 0x7c00;
    if (e <= 0) return s | ((m | 0x400) >> (1 - e));      // still subnormal
    return s | (e << 10) | m;
  };

  // 32-element blocks of `in16` u16 words -> `out32` u32 words: word 0 = d | m << 16 (m = 0 for
  // Q8_0), word j > 0 = raw bytes 4j - 2 .. 4j + 1.
  const blocks32 = (s, d, in16, out32, k) => {
    const n = d.length / out32;
    for (let b = 0, i = 0, o = 0; b < n; b++, i += in16, o += out32) {
      const h = s[i];
      d[o] = k ? h | (negScaled(h, k) << 16) : h;
      for (let j = 1; j < out32; j++) d[o + j] = s[i + 2 * j - 1] | (s[i + 2 * j] << 16);
    }
  };

  const q6k = (s, d) => {                                // 105 u16 -> 53 u32: bytes, then d | 0
    const n = d.length / 53;
    for (let b = 0, i = 0, o = 0; b < n; b++, i += 105, o += 53) {
      for (let j = 0; j < 52; j++) d[o + j] = s[i + 2 * j] | (s[i + 2 * j + 1] << 16);
      d[o + 52] = s[i + 104];
    }
  };

  return (type, src, dst) => {
    if (src.byteOffset & 1) src = src.slice();
    const s = new Uint16Array(src.buffer, src.byteOffset, src.byteLength >> 1);
    const d = new Uint32Array(dst.buffer, dst.byteOffset, dst.byteLength >> 2);
    if (type === "Q8_0") blocks32(s, d, 17, 9, 0);
    else if (type === "Q4_0") blocks32(s, d, 9, 5, 3);
    else if (type === "Q5_0") blocks32(s, d, 11, 6, 4);
    else if (type === "Q6_K") q6k(s, d);
    else throw new Error(`host_repack.js: no repack for ${type}`);
  };
})()
