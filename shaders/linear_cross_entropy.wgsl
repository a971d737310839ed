// Linear + cross-entropy, fused: the loss of z = x·Wᵀ + b against class targets, and its
// gradients, without ever holding the N × V logits (as torch.nn.functional.cross_entropy with
// weight, ignore_index, reduction and label_smoothing).
//
// The host streams the classes through in chunks of `width` columns starting at class `first`:
// a matmul writes one chunk's logits (N × width) into a scratch buffer, and these kernels fold
// it into per-row statistics (forward) or turn it in place into d(loss)/dz (backward) for the
// matmuls that follow. Every pass is deterministic: no atomics on floats, fixed orders.
//   lce_stats       per row (a team of TEAM invocations): the running max m of the row's logits
//                   so far and Σ exp(z − m) (rescaled by exp(m_old − m_new) when the max grows),
//                   the target's logit and, for label smoothing, Σ_c w_c (z_c − r), with r the
//                   first chunk's max (so that huge logits keep their precision).
//   lce_loss        one workgroup, after the last chunk: mean's denominator, each row's loss, the
//                   reduced loss into out[cursor[0]], and each row's gradient coefficients.
//   lce_grad        one invocation per logit of a chunk: z → d(loss)/dz.
//   lce_accumulate  sum += addend, elementwise (a chunk's share of dx).
// Rows whose target is ignore_index, or out of range (flagged for the host), contribute nothing.

struct Params {
    rows: u32,        // N
    classes: u32,     // V, over all chunks
    first: u32,       // the chunk's first class
    width: u32,       // classes in the chunk: the row stride of `logits`
    ignore_index: i32,
    reduction: u32,   // 0 none, 1 sum, 2 mean
    flags: u32,       // bit 0: class weights given
    smoothing: f32,   // label_smoothing ε
}

const MEAN: u32 = 2u;
const HAS_WEIGHT: u32 = 1u;
const LOWEST: f32 = -3.4028235e38;
// Invocations per row in lce_stats: ROW_WG (a workgroup per row, for GPUs) or 1 (a row per
// invocation and no barriers, for CPU adapters).
override TEAM: u32 = 64u;
const ROW_WG: u32 = 64u;
// Invocations of lce_loss: 256, or 1 for few rows (a serial sum without barriers).
override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> targets: array<i32>;          // N
@group(0) @binding(2) var<storage, read> weight: array<f32>;           // V: class weights
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;     // N × width: z, then dz
// Per row, two vec4s: [m, Σ exp(z − m), z_target, Σ w_c (z_c − r)] while the chunks stream
// through; [r, log Σ exp(z − m), hard, soft] once lce_loss has run, where
// dz_c = hard·(p_c − [c = y]) + soft·(p_c·Σ_k w_k − w_c).
@group(0) @binding(4) var<storage, read_write> stats: array<vec4<f32>>; // 2N
@group(0) @binding(5) var<storage, read_write> fault: array<atomic<i32>>; // [flag, bad target]
@group(0) @binding(6) var<storage, read_write> denom: array<f32>;      // [denominator, Σ w]
@group(0) @binding(7) var<storage, read_write> row_loss: array<f32>;   // N
@group(0) @binding(8) var<storage, read> cursor: array<u32>;           // 1: where the loss goes
@group(0) @binding(9) var<storage, read_write> out: array<f32>;
@group(0) @binding(10) var<storage, read_write> sum: array<f32>;       // lce_accumulate
@group(0) @binding(11) var<storage, read> addend: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn class_weight(c: u32) -> f32 {
    if (p.flags & HAS_WEIGHT) != 0u {
        return weight[c];
    }
    return 1.0;
}

// Whether a row's target counts: neither ignored nor out of range.
fn counts(t: i32) -> bool {
    return t != p.ignore_index && t >= 0 && u32(t) < p.classes;
}

// The linear index of an invocation over a grid split by Gpu::grid.
fn linear_index(wg: vec3<u32>, groups: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wg.x + wg.y * groups.x) * size + lid;
}

// max (when `take_max`) or Σ of `v` over the n invocations of a workgroup (a power of two),
// in a fixed order; every invocation must call it and gets the result.
fn workgroup_reduce(lid: u32, n: u32, v: f32, take_max: bool) -> f32 {
    if n == 1u {
        return v;
    }
    scratch[lid] = v;
    for (var s = n / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if lid < s {
            let other = scratch[lid + s];
            scratch[lid] = select(scratch[lid] + other, max(scratch[lid], other), take_max);
        }
    }
    workgroupBarrier();
    let total = scratch[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn lce_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // A team is the whole workgroup or one invocation, so these returns are uniform per team.
    let row = linear_index(wg, groups, lid, ROW_WG) / TEAM;
    if row >= p.rows {
        return;
    }
    let t = targets[row];
    if !counts(t) {
        return;
    }
    let lane = lid % TEAM;
    let base = row * p.width;
    var m = LOWEST;
    for (var j = lane; j < p.width; j += TEAM) {
        m = max(m, logits[base + j]);
    }
    m = workgroup_reduce(lid, TEAM, m, true);
    var old = stats[2u * row];
    var r = stats[2u * row + 1u].x;
    if p.first == 0u {
        old = vec4(LOWEST, 0.0, 0.0, 0.0);
        r = m;
    }
    var e = 0.0;
    var wz = 0.0;
    for (var j = lane; j < p.width; j += TEAM) {
        let z = logits[base + j];
        e += exp(z - m);
        wz += class_weight(p.first + j) * (z - r);
    }
    e = workgroup_reduce(lid, TEAM, e, false);
    if p.smoothing != 0.0 {
        wz = workgroup_reduce(lid, TEAM, wz, false);
    }
    if lane == 0u {
        let top = max(old.x, m);
        var s = vec4(top, old.y * exp(old.x - top) + e * exp(m - top), old.z, old.w + wz);
        let y = u32(t);
        if y >= p.first && y - p.first < p.width {
            s.z = logits[base + y - p.first];
        }
        stats[2u * row] = s;
        stats[2u * row + 1u].x = r;
    }
}

@compute @workgroup_size(WG)
fn lce_loss(@builtin(local_invocation_index) lid: u32) {
    var w = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        w += class_weight(c);
    }
    let weight_sum = workgroup_reduce(lid, WG, w, false);
    let eps = p.smoothing;
    let spread = eps / f32(p.classes);
    var d = 0.0;
    var total = 0.0;
    for (var row = lid; row < p.rows; row += WG) {
        let t = targets[row];
        row_loss[row] = 0.0;
        if t == p.ignore_index {
            continue;
        }
        if !counts(t) {
            if atomicExchange(&fault[0], 1) == 0 {
                atomicStore(&fault[1], t);
            }
            continue;
        }
        let s = stats[2u * row];
        let r = stats[2u * row + 1u].x;
        let log_sum = log(s.y);
        let w_y = class_weight(u32(t));
        // −log p_y = (m − z_y) + log Σ exp(z − m); Σ_c w_c (lse − z_c) measured from r.
        let nll = w_y * ((s.x - s.z) + log_sum);
        let smoothed = weight_sum * ((s.x - r) + log_sum) - s.w;
        let l = (1.0 - eps) * nll + spread * smoothed;
        row_loss[row] = l;
        total += l;
        d += w_y;
    }
    let denominator = workgroup_reduce(lid, WG, d, false);
    let loss_sum = workgroup_reduce(lid, WG, total, false);
    // The gradient's scale: 1/denominator for mean (0 when it is 0), else 1.
    var g = 1.0;
    if p.reduction == MEAN {
        g = select(0.0, 1.0 / denominator, denominator != 0.0);
    }
    for (var row = lid; row < p.rows; row += WG) {
        let t = targets[row];
        if counts(t) {
            let r = stats[2u * row + 1u].x;
            let hard = g * (1.0 - eps) * class_weight(u32(t));
            stats[2u * row + 1u] = vec4(r, log(stats[2u * row].y), hard, g * spread);
        }
    }
    if lid == 0u {
        denom[0] = denominator;
        denom[1] = weight_sum;
        var loss = loss_sum;
        if p.reduction == MEAN {
            loss = select(bitcast<f32>(0x7fc00000u), loss / denominator, denominator != 0.0);
        }
        out[min(cursor[0], arrayLength(&out) - 1u)] = loss;
    }
}

@compute @workgroup_size(256)
fn lce_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid, 256u);
    if i >= p.rows * p.width {
        return;
    }
    let row = i / p.width;
    let t = targets[row];
    if !counts(t) {
        logits[i] = 0.0;
        return;
    }
    let c = p.first + i % p.width;
    let k = stats[2u * row + 1u];
    let prob = exp((logits[i] - stats[2u * row].x) - k.y);
    var dz = k.z * (prob - select(0.0, 1.0, c == u32(t)));
    if p.smoothing != 0.0 {
        dz += k.w * (prob * denom[1] - class_weight(c));
    }
    logits[i] = dz;
}

@compute @workgroup_size(256)
fn lce_accumulate(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_index(wg, groups, lid, 256u);
    if i < arrayLength(&sum) && i < arrayLength(&addend) {
        sum[i] += addend[i];
    }
}
