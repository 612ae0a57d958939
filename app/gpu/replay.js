// replay.js: encode a recorded dispatch plan (app/gpu/plan.py) in ONE call from Python.
//
// app/gpu/browser.py evaluates this file once per device with pyodide.code.run_js; its value is
// the function below. Python builds the arrays once, at record time, so a replay costs one
// Python -> JS call however many dispatches the plan holds.
//
//   device      GPUDevice
//   pipelines   Array<GPUComputePipeline>     pipeline of dispatch d at [d]
//   bindGroups  Array<Array<GPUBindGroup>>    bind group g of dispatch d at [d][g]
//   counts      Uint32Array (3 * n)           workgroups (x, y, z) of dispatch d at [3d, 3d+3)
//   step        GPUBuffer | null              per-step parameters (shaders/lib/step.wgsl) ...
//   data        Uint8Array | null             ... written at offset 0 before the pass, if given
//   timer       {querySet, resolve} | null    timestamps at the start (0) and end (1) of the pass,
//                                             resolved into `resolve` (two u64 nanoseconds)
(device, pipelines, bindGroups, counts, step, data, timer) => {
  const queue = device.queue;
  if (step && data) queue.writeBuffer(step, 0, data);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass(timer ? {
    timestampWrites: {querySet: timer.querySet, beginningOfPassWriteIndex: 0,
                      endOfPassWriteIndex: 1}} : {});
  let last = null;
  for (let d = 0; d < pipelines.length; d++) {
    if (pipelines[d] !== last) {
      last = pipelines[d];
      pass.setPipeline(last);
    }
    const groups = bindGroups[d];
    for (let g = 0; g < groups.length; g++) pass.setBindGroup(g, groups[g]);
    pass.dispatchWorkgroups(counts[3 * d], counts[3 * d + 1], counts[3 * d + 2]);
  }
  pass.end();
  if (timer) enc.resolveQuerySet(timer.querySet, 0, 2, timer.resolve, 0);
  queue.submit([enc.finish()]);
}
