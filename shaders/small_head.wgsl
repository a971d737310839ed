// A classifier's last Linear layer, its mean cross-entropy against class targets and both of
// their backward passes in one workgroup: for few rows and classes (the MNIST tutorial's 64 × 10)
// the five dispatches of the unfused path (product, loss, weight and bias gradients, input
// gradient) cost more than their arithmetic.
//
//   z  = x·Wᵀ + b                       rows × classes, kept in workgroup memory
//   loss, dz                             as cross_entropy.wgsl computes them (ignore_index,
//                                        label smoothing; out-of-range targets flagged, then
//                                        ignored), dz scaled by 1 / (rows counted)
//   dx = dz·W (⊙ [x > 0])                rows × features
//   dW = dzᵀ·x, db = Σ_rows dz           classes × features, classes
//
// Invocation lid takes elements lid, lid + WG, … of z, then rows lid, lid + 64, … for the loss,
// then elements of dx and dW (of four features each in small_head4, the entry point for
// features % 4 = 0). Every sum runs in a fixed order by one invocation: runs are bit-identical
// whatever WG is. Ten storage buffers: more than WebGPU's
// default of 8, which the host checks (CPU adapters and GPUs offer more).

struct Params {
    rows: u32,
    features: u32,
    classes: u32,
    ignore_index: i32,
    smoothing: f32, // label_smoothing ε
}

// Invocations: one 8-lane subgroup on CPU adapters (no barrier waits on another), more on GPUs.
override WG: u32 = 256u;
// Invocations that take the loss's rows (the partial sums' length; the loss is a small part).
const LOSS_WG: u32 = 64u;
// Write dx (nothing needs it for a first layer).
override DX: bool = true;
// Zero dx where x (a ReLU's output) is ≤ 0: that ReLU's backward, fused.
override GATE: bool = false;
// rows × classes the workgroup holds (with the partial sums, within WebGPU's 16 KiB).
const HELD: u32 = 3840u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;           // rows × features
@group(0) @binding(2) var<storage, read> w: array<f32>;           // classes × features
@group(0) @binding(3) var<storage, read> b: array<f32>;           // classes
@group(0) @binding(4) var<storage, read> targets: array<i32>;     // rows
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;    // rows × features
@group(0) @binding(7) var<storage, read_write> dw: array<f32>;    // classes × features
@group(0) @binding(8) var<storage, read_write> db: array<f32>;    // classes
@group(0) @binding(9) var<storage, read> cursor: array<u32>;      // 1: where the loss goes
@group(0) @binding(10) var<storage, read_write> out: array<f32>;
@group(0) @binding(11) var<storage, read_write> fault: array<atomic<i32>>; // [flag, bad target]
// x, W, dx and dW again, four features at a time, for small_head4.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dx4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> dw4: array<vec4<f32>>;

var<workgroup> z: array<f32, HELD>;          // logits, then d(loss)/d(logits)
var<workgroup> partial: array<vec2<f32>, LOSS_WG>; // each loss invocation's (Σ loss, rows counted)

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Row r of x · row c of W.
fn dot_row(r: u32, c: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < p.features; d++) {
        s = fma(x[r * p.features + d], w[c * p.features + d], s);
    }
    return s;
}

// dot_row four features at a time.
fn dot_row4(r: u32, c: u32) -> f32 {
    let quads = p.features / 4u;
    var s = vec4(0.0);
    for (var q = 0u; q < quads; q++) {
        s = fma(x4[r * quads + q], w4[c * quads + q], s);
    }
    return (s.x + s.y) + (s.z + s.w);
}

// Row r's loss (0 when ignored) from its logits in z, which become its unscaled gradient;
// returns (loss, 1) or (0, 0) for an ignored row.
fn row_loss_and_grad(r: u32) -> vec2<f32> {
    let base = r * p.classes;
    var m = -3.4028235e38;
    for (var c = 0u; c < p.classes; c++) {
        m = max(m, z[base + c]);
    }
    let t = targets[r];
    let in_range = t >= 0 && u32(t) < p.classes;
    if t != p.ignore_index && !in_range {
        if atomicExchange(&fault[0], 1) == 0 {
            atomicStore(&fault[1], t);
        }
    }
    if t == p.ignore_index || !in_range {
        for (var c = 0u; c < p.classes; c++) {
            z[base + c] = 0.0;
        }
        return vec2(0.0);
    }
    var e = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        e += exp(z[base + c] - m);
    }
    let log_sum = log(e);
    let eps = p.smoothing;
    let spread = eps / f32(p.classes);
    let y = u32(t);
    var smoothing_term = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        smoothing_term -= (z[base + c] - m) - log_sum;
    }
    let nll = -((z[base + y] - m) - log_sum);
    for (var c = 0u; c < p.classes; c++) {
        let prob = exp((z[base + c] - m) - log_sum);
        let hard = prob - select(0.0, 1.0, c == y);
        let soft = prob * f32(p.classes) - 1.0;
        z[base + c] = (1.0 - eps) * hard + spread * soft;
    }
    return vec2((1.0 - eps) * nll + spread * smoothing_term, 1.0);
}

// The head with features one at a time.
@compute @workgroup_size(WG)
fn small_head(@builtin(local_invocation_index) lid: u32) {
    for (var e = lid; e < p.rows * p.classes; e += WG) {
        z[e] = b[e % p.classes] + dot_row(e / p.classes, e % p.classes);
    }
    workgroupBarrier();
    let total = loss_and_dz(lid);
    gradients(lid);
    finish(lid, total);
}

// The head four features at a time (features % 4 = 0): a quarter of the accesses to x, W, dx and
// dW (on CPU adapters each access is a loop over the lanes).
@compute @workgroup_size(WG)
fn small_head4(@builtin(local_invocation_index) lid: u32) {
    for (var e = lid; e < p.rows * p.classes; e += WG) {
        z[e] = b[e % p.classes] + dot_row4(e / p.classes, e % p.classes);
    }
    workgroupBarrier();
    let total = loss_and_dz(lid);
    gradients4(lid);
    finish(lid, total);
}

// From the logits in z: the losses (rows by the first min(WG, LOSS_WG) invocations), summed
// over the workgroup as (Σ loss, rows counted), and dz in z, scaled for the mean. Ends with a
// barrier.
fn loss_and_dz(lid: u32) -> vec2<f32> {
    let takers = min(WG, LOSS_WG);
    if lid < takers {
        var mine = vec2(0.0);
        for (var r = lid; r < p.rows; r += takers) {
            mine += row_loss_and_grad(r);
        }
        partial[lid] = mine;
    }
    workgroupBarrier();
    var total = vec2(0.0);
    for (var i = 0u; i < takers; i++) {
        total += partial[i];
    }
    // The mean's gradient: 1 / (rows counted), 0 when none is.
    let g = select(0.0, 1.0 / total.y, total.y != 0.0);
    for (var e = lid; e < p.rows * p.classes; e += WG) {
        z[e] *= g;
    }
    workgroupBarrier();
    return total;
}

// db from dz in z, and the mean loss into out[cursor[0]].
fn finish(lid: u32, total: vec2<f32>) {
    for (var c = lid; c < p.classes; c += WG) {
        var s = 0.0;
        for (var r = 0u; r < p.rows; r++) {
            s += z[r * p.classes + c];
        }
        db[c] = s;
    }
    if lid == 0u {
        out[min(cursor[0], arrayLength(&out) - 1u)] = select(nan(), total.x / total.y, total.y != 0.0);
    }
}

// dx and dW (elements lid, lid + WG, … of each) from dz in z, one feature at a time.
fn gradients(lid: u32) {
    for (var i = lid; i < select(0u, p.rows * p.features, DX); i += WG) {
        let r = i / p.features;
        let d = i % p.features;
        var s = 0.0;
        for (var c = 0u; c < p.classes; c++) {
            s = fma(z[r * p.classes + c], w[c * p.features + d], s);
        }
        if GATE {
            s = select(0.0, s, x[i] > 0.0);
        }
        dx[i] = s;
    }
    for (var e = lid; e < p.classes * p.features; e += WG) {
        let c = e / p.features;
        let d = e % p.features;
        var s = 0.0;
        for (var r = 0u; r < p.rows; r++) {
            s = fma(z[r * p.classes + c], x[r * p.features + d], s);
        }
        dw[e] = s;
    }
}

// gradients, four features at a time.
fn gradients4(lid: u32) {
    let quads = p.features / 4u;
    for (var i = lid; i < select(0u, p.rows * quads, DX); i += WG) {
        let r = i / quads;
        let q = i % quads;
        var s = vec4(0.0);
        for (var c = 0u; c < p.classes; c++) {
            s = fma(vec4(z[r * p.classes + c]), w4[c * quads + q], s);
        }
        if GATE {
            s = select(vec4(0.0), s, x4[i] > vec4(0.0));
        }
        dx4[i] = s;
    }
    for (var e = lid; e < p.classes * quads; e += WG) {
        let c = e / quads;
        let q = e % quads;
        var s = vec4(0.0);
        for (var r = 0u; r < p.rows; r++) {
            s = fma(vec4(z[r * p.classes + c]), x4[r * quads + q], s);
        }
        dw4[e] = s;
    }
}
