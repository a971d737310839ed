// Fused, numerically stable softmax cross-entropy with class-index targets: loss and dlogits.
//
// Three passes, each deterministic:
//   ce_denominator  one workgroup: Σ w[y_i] over non-ignored targets (mean's denominator); flags
//                   any target outside [0, C) so the host can report it.
//   ce_rows         one workgroup per row: max and Σexp by tree reductions, the row's loss
//                   -w[y]·log_softmax(x)[y], and its gradient g·w[y]·(softmax(x) - onehot(y)).
//   ce_total        one workgroup: the reduced loss, written to out[cursor[0]] (clamped to out).
// The gradient is that of the reduced loss (sum or mean; for none, of the sum) with upstream 1.

struct Params {
    rows: u32,
    classes: u32,
    ignore_index: i32,
    reduction: u32,  // 0 none, 1 sum, 2 mean
    has_weight: u32, // 0: every class weighs 1
}

const NONE: u32 = 0u;
const MEAN: u32 = 2u;
const WG: u32 = 256u;
const ROW_WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
// ce_denominator
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> denom: array<f32>;          // 1
@group(0) @binding(4) var<storage, read_write> fault: array<atomic<i32>>; // [flag, bad target]
// ce_rows (also uses 1, 2; out-of-range targets, flagged by ce_denominator, count as ignored)
@group(0) @binding(5) var<storage, read> logits: array<f32>;         // rows × classes
@group(0) @binding(6) var<storage, read> denom_in: array<f32>;       // 1
@group(0) @binding(7) var<storage, read_write> row_loss: array<f32>; // rows
@group(0) @binding(8) var<storage, read_write> grad: array<f32>;     // rows × classes
// ce_total (also uses 6)
@group(0) @binding(9) var<storage, read> row_loss_in: array<f32>;    // rows
@group(0) @binding(10) var<storage, read> cursor: array<u32>;        // 1: where the loss goes
@group(0) @binding(11) var<storage, read_write> out: array<f32>;

var<workgroup> scratch: array<f32, 256>;

fn class_weight(c: i32) -> f32 {
    if p.has_weight != 0u {
        return weight[c];
    }
    return 1.0;
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// Sum of scratch[0..n] into scratch[0] (n a power of two); every invocation must call it.
fn tree_sum(lid: u32, n: u32) {
    for (var s = n / 2u; s > 0u; s /= 2u) {
        workgroupBarrier();
        if lid < s {
            scratch[lid] += scratch[lid + s];
        }
    }
    workgroupBarrier();
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

@compute @workgroup_size(256)
fn ce_denominator(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.rows; i += WG) {
        let t = targets[i];
        if t == p.ignore_index {
            continue;
        }
        if !in_range(t) {
            flag_target(t);
            continue;
        }
        s += class_weight(t);
    }
    scratch[lid] = s;
    tree_sum(lid, WG);
    if lid == 0u {
        denom[0] = scratch[0];
    }
}

@compute @workgroup_size(64)
fn ce_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * groups.x;
    if row >= p.rows {
        return;
    }
    let base = row * p.classes;
    let t = targets[row];
    if t == p.ignore_index || !in_range(t) {
        for (var c = lid; c < p.classes; c += ROW_WG) {
            grad[base + c] = 0.0;
        }
        if lid == 0u {
            row_loss[row] = 0.0;
        }
        return;
    }

    // Row maximum.
    var m = -3.4028235e38;
    for (var c = lid; c < p.classes; c += ROW_WG) {
        m = max(m, logits[base + c]);
    }
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

    // log Σ exp(x - max). log_softmax(x) = (x - max) - log_sum: x - max is exact for nearby
    // values, so huge logits keep their precision (max + log_sum would round at max's scale).
    var e = 0.0;
    for (var c = lid; c < p.classes; c += ROW_WG) {
        e += exp(logits[base + c] - m);
    }
    scratch[lid] = e;
    tree_sum(lid, ROW_WG);
    let log_sum = log(scratch[0]);

    let w = class_weight(t);
    // The gradient's scale: 1/denominator for mean (0 when every target is ignored), else 1.
    var g = w;
    if p.reduction == MEAN {
        let d = denom_in[0];
        g = select(0.0, w / d, d != 0.0);
    }
    for (var c = lid; c < p.classes; c += ROW_WG) {
        let prob = exp((logits[base + c] - m) - log_sum);
        grad[base + c] = g * (prob - select(0.0, 1.0, c == u32(t)));
    }
    if lid == 0u {
        row_loss[row] = -w * ((logits[base + u32(t)] - m) - log_sum);
    }
}

@compute @workgroup_size(256)
fn ce_total(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.rows; i += WG) {
        s += row_loss_in[i];
    }
    scratch[lid] = s;
    tree_sum(lid, WG);
    if lid == 0u {
        var loss = scratch[0];
        if p.reduction == MEAN {
            let d = denom_in[0];
            loss = select(nan(), loss / d, d != 0.0);
        }
        out[min(cursor[0], arrayLength(&out) - 1u)] = loss;
    }
}
