// lib/glu_act.wgsl — the gated-MLP activations, shared by glu.wgsl and matvec.wgsl (GLU_X), so
// the fused and the separate paths compute bit-identical values.
//
//   silu(g)      = g / (1 + exp(-g))                                        (SwiGLU)
//   gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3)))           (GeGLU)
//                = g / (1 + exp(-2 u)),  u = sqrt(2/pi) (g + 0.044715 g^3)
// gelu_tanh is evaluated in the second (identical) form: no tanh, so no 1 + tanh cancellation
// for negative g and no NaN from tanh of large |u| (tanh through sinh/cosh overflows). Where the
// exp argument passes 80 the result is 0 (see gated); g is clamped to +-20 inside u (u is +-300
// there: the gate is exactly 0 or 1 in f32) so g^3 cannot overflow.

// g / (1 + exp(a)); 0 once a > 80, where the true value is below |g| e^-80 (1e-33 for any
// gate that is not itself astronomically large) and exp could overflow.
fn gated(g: f32, a: f32) -> f32 {
    return select(g / (1.0 + exp(min(a, 80.0))), 0.0, a > 80.0);
}

fn silu(g: f32) -> f32 {
    return gated(g, -g);
}

fn gelu_tanh(g: f32) -> f32 {
    let c = clamp(g, -20.0, 20.0);
    return gated(g, -1.5957691216057308 * (c + 0.044715 * c * c * c));  // -2 sqrt(2/pi) (...)
}
