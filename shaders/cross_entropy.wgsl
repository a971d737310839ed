// Fused, numerically stable softmax cross-entropy: loss and d(loss)/d(logits), as
// torch.nn.CrossEntropyLoss computes them (weight, ignore_index, reduction, label_smoothing;
// class-index or probability targets).
//
// The input is seen as N × C × D (D = d1·…·dk, 1 for N × C), so each of the N·D "rows" reads its
// C logits D apart. Three passes, each deterministic:
//   ce_denominator  one workgroup: Σ_c w_c, and mean's denominator (Σ w[y] over non-ignored
//                   class targets, or N·D for probability targets); flags any class target
//                   outside [0, C) so the host can report it.
//   ce_rows         a team of TEAM invocations per row: max and Σexp (by tree reductions when
//                   TEAM > 1), the row's loss and its gradient, with label smoothing folded in.
//                   A team is the whole workgroup (many classes) or one invocation (few
//                   classes: no barriers at all, which CPU adapters pay dearly for).
//   ce_total        one workgroup: the reduced loss, written to out[cursor[0]] (clamped to out).
// ce_single runs all three in one workgroup (one dispatch) for few rows of few classes against
// class targets.
// The gradient is that of the reduced loss (sum or mean; for none, of the sum) with upstream 1.

struct Params {
    rows: u32,        // N·D
    classes: u32,     // C
    inner: u32,       // D: the distance between a row's consecutive logits
    ignore_index: i32,
    reduction: u32,   // 0 none, 1 sum, 2 mean
    flags: u32,       // bit 0: class weights given, bit 1: probability targets
    smoothing: f32,   // label_smoothing ε
}

const MEAN: u32 = 2u;
const HAS_WEIGHT: u32 = 1u;
const PROBS: u32 = 2u;
// Invocations of ce_denominator and ce_total: 256, or 1 for few rows (a serial sum, without
// the barriers that CPU adapters pay dearly for).
override WG: u32 = 256u;
const ROW_WG: u32 = 64u;
// Invocations per row in ce_rows: ROW_WG, or 1 for one row per invocation.
override TEAM: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// ce_denominator
@group(0) @binding(1) var<storage, read> targets: array<i32>;       // class targets, N·D
@group(0) @binding(2) var<storage, read> weight: array<f32>;        // C
@group(0) @binding(3) var<storage, read_write> denom: array<f32>;   // [denominator, Σ w]
@group(0) @binding(4) var<storage, read_write> fault: array<atomic<i32>>; // [flag, bad target]
// ce_rows (also uses 1, 2; out-of-range targets, flagged by ce_denominator, count as ignored)
@group(0) @binding(5) var<storage, read> logits: array<f32>;        // N × C × D
@group(0) @binding(6) var<storage, read> denom_in: array<f32>;      // [denominator, Σ w]
@group(0) @binding(7) var<storage, read_write> row_loss: array<f32>; // N·D
@group(0) @binding(8) var<storage, read_write> grad: array<f32>;    // N × C × D
@group(0) @binding(12) var<storage, read> probs: array<f32>;        // probability targets, N × C × D
// ce_total (also uses 6)
@group(0) @binding(9) var<storage, read> row_loss_in: array<f32>;   // N·D
@group(0) @binding(10) var<storage, read> cursor: array<u32>;       // 1: where the loss goes
@group(0) @binding(11) var<storage, read_write> out: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn class_weight(c: u32) -> f32 {
    if (p.flags & HAS_WEIGHT) != 0u {
        return weight[c];
    }
    return 1.0;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Σ over the workgroup of each invocation's `v` (n invocations, a power of two), in a fixed
// order; every invocation must call it and gets the total.
fn workgroup_sum(lid: u32, n: u32, v: f32) -> f32 {
    if n == 1u {
        return v;
    }
    scratch[lid] = v;
    for (var s = n / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if lid < s {
            scratch[lid] += scratch[lid + s];
        }
    }
    workgroupBarrier();
    let total = scratch[0];
    workgroupBarrier();
    return total;
}

// workgroup_sum over a row's team (the whole workgroup, or one invocation).
fn team_sum(lid: u32, v: f32) -> f32 {
    return workgroup_sum(lid, TEAM, v);
}

// Records the first out-of-range target seen.
fn flag_target(t: i32) {
    if atomicExchange(&fault[0], 1) == 0 {
        atomicStore(&fault[1], t);
    }
}

fn in_range(t: i32) -> bool {
    return t >= 0 && u32(t) < p.classes;
}

@compute @workgroup_size(WG)
fn ce_denominator(@builtin(local_invocation_index) lid: u32) {
    let d = denominators(lid);
    if lid == 0u {
        denom[0] = d.x;
        denom[1] = d.y;
    }
}

// [mean's denominator, Σ_c w_c], summed over a workgroup of WG; flags out-of-range targets.
fn denominators(lid: u32) -> vec2<f32> {
    var w = 0.0;
    for (var c = lid; c < p.classes; c += WG) {
        w += class_weight(c);
    }
    let weight_sum = workgroup_sum(lid, WG, w);
    var d = 0.0;
    if (p.flags & PROBS) == 0u {
        for (var i = lid; i < p.rows; i += WG) {
            let t = targets[i];
            if t == p.ignore_index {
                continue;
            }
            if !in_range(t) {
                flag_target(t);
                continue;
            }
            d += class_weight(u32(t));
        }
    }
    let total = workgroup_sum(lid, WG, d);
    return vec2(select(total, f32(p.rows), (p.flags & PROBS) != 0u), weight_sum);
}

@compute @workgroup_size(64)
fn ce_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = (wg.x + wg.y * groups.x) * (ROW_WG / TEAM) + lid / TEAM;
    if row >= p.rows {
        return;
    }
    let d = vec2(denom_in[0], denom_in[1]);
    if (p.flags & PROBS) != 0u {
        probs_loss_and_grad(row, lid, d);
    } else {
        class_loss_and_grad(row, lid, d);
    }
}

// Where logit 0 of a row sits: logit c at row_base(row) + c·inner.
fn row_base(row: u32) -> u32 {
    return (row / p.inner) * p.classes * p.inner + row % p.inner;
}

// A row's maximum and log Σ exp(x_c − max), by its team (lanes lid % TEAM).
fn row_stats(base: u32, lid: u32) -> vec2<f32> {
    let lane = lid % TEAM;
    var m = -3.4028235e38;
    for (var c = lane; c < p.classes; c += TEAM) {
        m = max(m, logits[base + c * p.inner]);
    }
    if TEAM > 1u {
        scratch[lid] = m;
        for (var s = ROW_WG / 2u; s > 0u; s /= 2u) {
            workgroupBarrier();
            if lid < s {
                scratch[lid] = max(scratch[lid], scratch[lid + s]);
            }
        }
        workgroupBarrier();
        m = scratch[0];
        workgroupBarrier();
    }
    var e = 0.0;
    for (var c = lane; c < p.classes; c += TEAM) {
        e += exp(logits[base + c * p.inner] - m);
    }
    return vec2(m, log(team_sum(lid, e)));
}

// Logit i's log-softmax from its row's stats: (x − max) − log_sum. x − max is exact for nearby
// values, so huge logits keep their precision (max + log_sum would round at max's scale).
fn log_prob(i: u32, stats: vec2<f32>) -> f32 {
    return (logits[i] - stats.x) - stats.y;
}

// The gradient's scale: 1/denominator for mean (0 when it is 0), else 1.
fn grad_scale(denominator: f32) -> f32 {
    if p.reduction == MEAN {
        return select(0.0, 1.0 / denominator, denominator != 0.0);
    }
    return 1.0;
}

// One row's loss (written to row_loss and returned) and gradient against probability targets,
// by its team; d: [mean's denominator, Σ_c w_c]. Smoothed targets y'_c = y_c(1 - ε) + ε/C;
// loss = -Σ w_c y'_c L_c; gradient g·(p_c·Σ_k w_k y'_k − w_c y'_c).
fn probs_loss_and_grad(row: u32, lid: u32, d: vec2<f32>) -> f32 {
    let lane = lid % TEAM;
    let base = row_base(row);
    let stats = row_stats(base, lid);
    let g = grad_scale(d.x);
    let eps = p.smoothing;
    let spread = eps / f32(p.classes);
    var l = 0.0;
    var wy = 0.0;
    for (var c = lane; c < p.classes; c += TEAM) {
        let i = base + c * p.inner;
        let y = probs[i] * (1.0 - eps) + spread;
        let w = class_weight(c);
        l -= w * y * log_prob(i, stats);
        wy += w * y;
    }
    let loss = team_sum(lid, l);
    let wy_sum = team_sum(lid, wy);
    for (var c = lane; c < p.classes; c += TEAM) {
        let i = base + c * p.inner;
        let y = probs[i] * (1.0 - eps) + spread;
        let prob = exp(log_prob(i, stats));
        grad[i] = g * (prob * wy_sum - class_weight(c) * y);
    }
    if lane == 0u {
        row_loss[row] = loss;
    }
    return loss;
}

// The same against a class target (ignored, or out of range: loss and gradient 0):
// loss = (1 - ε)·(-w_y L_y) + (ε/C)·(-Σ_c w_c L_c);
// gradient g·[(1 - ε)·w_y·(p_c − [c = y]) + (ε/C)·(p_c·Σ_k w_k − w_c)].
fn class_loss_and_grad(row: u32, lid: u32, d: vec2<f32>) -> f32 {
    let lane = lid % TEAM;
    let base = row_base(row);
    let t = targets[row];
    if t == p.ignore_index || !in_range(t) {
        for (var c = lane; c < p.classes; c += TEAM) {
            grad[base + c * p.inner] = 0.0;
        }
        if lane == 0u {
            row_loss[row] = 0.0;
        }
        return 0.0;
    }
    let stats = row_stats(base, lid);
    let g = grad_scale(d.x);
    let eps = p.smoothing;
    let spread = eps / f32(p.classes);
    let y = u32(t);
    let w_y = class_weight(y);
    var smoothing_term = 0.0;
    if eps != 0.0 {
        var s = 0.0;
        for (var c = lane; c < p.classes; c += TEAM) {
            s -= class_weight(c) * log_prob(base + c * p.inner, stats);
        }
        smoothing_term = team_sum(lid, s);
    }
    let weight_sum = d.y;
    for (var c = lane; c < p.classes; c += TEAM) {
        let i = base + c * p.inner;
        let prob = exp(log_prob(i, stats));
        let hard = w_y * (prob - select(0.0, 1.0, c == y));
        let soft = prob * weight_sum - class_weight(c);
        grad[i] = g * ((1.0 - eps) * hard + spread * soft);
    }
    let nll = -w_y * log_prob(base + y * p.inner, stats);
    let loss = (1.0 - eps) * nll + spread * smoothing_term;
    if lane == 0u {
        row_loss[row] = loss;
    }
    return loss;
}

@compute @workgroup_size(WG)
fn ce_total(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.rows; i += WG) {
        s += row_loss_in[i];
    }
    let total = workgroup_sum(lid, WG, s);
    if lid == 0u {
        write_loss(total, denom_in[0]);
    }
}

// The three passes in one workgroup, for few rows of few classes (TEAM = 1) and class targets:
// invocation lid takes rows lid, lid + WG, … One dispatch instead of three, which CPU adapters
// charge for whatever their size.
@compute @workgroup_size(WG)
fn ce_single(@builtin(local_invocation_index) lid: u32) {
    let d = denominators(lid);
    var s = 0.0;
    for (var row = lid; row < p.rows; row += WG) {
        s += class_loss_and_grad(row, lid, d);
    }
    let total = workgroup_sum(lid, WG, s);
    if lid == 0u {
        write_loss(total, d.x);
    }
}

// out[cursor[0]] (clamped to out) = the reduced loss from the rows' total.
fn write_loss(total: f32, denominator: f32) {
    var loss = total;
    if p.reduction == MEAN {
        loss = select(nan(), loss / denominator, denominator != 0.0);
    }
    out[min(cursor[0], arrayLength(&out) - 1u)] = loss;
}
