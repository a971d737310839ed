// small_head_lanes: small_head.wgsl's head (z = x·Wᵀ + b, the mean cross-entropy, dx, dW, db;
// its parameters, bindings and overrides) for adapters with 8-lane subgroups and 64-bit
// integers: CPU adapters, where one workgroup is one core's task and each storage access a loop
// over the lanes. One subgroup, no barrier, no workgroup memory:
//
//   - lane l owns rows 8l..8l+7 (64 rows at most), and keeps each row's logits, then its dz, in
//     registers: four vec4s of classes (CLASSES, at most 16, fixed per pipeline);
//   - features (a multiple of 8) are walked eight at a time through 32-byte loads and stores
//     (int64.wgsl): each step loads the lane's 8 rows of x and the CLASSES rows of W, twice in
//     all (logits, then the gradients; W only when dx is asked for), where the unfused path
//     reads them in four dispatches;
//   - dW's and db's sums over rows are each lane's 8 rows in order, then subgroupAdd across the
//     lanes: a fixed order, so runs are bit-identical.
//
// The host prepends small_head.wgsl and int64.wgsl.

// The classes, p.classes (at most 16): the logits' registers and the loops over classes are
// fixed when the pipeline is made.
override CLASSES: u32 = 10u;

// x, W, dx and dW again, eight features at a time.
@group(0) @binding(1) var<storage, read> x8: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> w8: array<vec4<u64>>;
@group(0) @binding(6) var<storage, read_write> dx8: array<vec4<u64>>;
@group(0) @binding(7) var<storage, read_write> dw8: array<vec4<u64>>;

// One row's values for the 16 classes a pipeline may have: classes 4k..4k+3 in qk.
struct Classes {
    q0: vec4<f32>,
    q1: vec4<f32>,
    q2: vec4<f32>,
    q3: vec4<f32>,
}

// A lane's 8 rows, each a Classes (logits, then dz).
struct RowClasses {
    j0: Classes,
    j1: Classes,
    j2: Classes,
    j3: Classes,
    j4: Classes,
    j5: Classes,
    j6: Classes,
    j7: Classes,
}

// Eight features of a lane's 8 rows of x.
struct RowEights {
    j0: Eight,
    j1: Eight,
    j2: Eight,
    j3: Eight,
    j4: Eight,
    j5: Eight,
    j6: Eight,
    j7: Eight,
}

// Eight features of every class's row of W (zeros past CLASSES).
struct ClassEights {
    c0: Eight,
    c1: Eight,
    c2: Eight,
    c3: Eight,
    c4: Eight,
    c5: Eight,
    c6: Eight,
    c7: Eight,
    c8: Eight,
    c9: Eight,
    c10: Eight,
    c11: Eight,
    c12: Eight,
    c13: Eight,
    c14: Eight,
    c15: Eight,
}

// The classes of quad k: which exist.
fn live(k: u32) -> vec4<bool> {
    return vec4(4u * k) + vec4(0u, 1u, 2u, 3u) < vec4(CLASSES);
}

// Class c's value (c a constant wherever this is called, so the choice folds away).
fn class_at(v: Classes, c: u32) -> f32 {
    let q = select(select(v.q0, v.q1, c >= 4u), select(v.q2, v.q3, c >= 12u), c >= 8u);
    return q[c % 4u];
}

// The lane's row j (clamped to the last row: rows past it are read, never counted or stored).
fn row_of(lane: u32, j: u32) -> u32 {
    return min(8u * lane + j, p.rows - 1u);
}

// Eight features at step s of the lane's rows of x.
fn load_rows(lane: u32, s: u32, steps: u32) -> RowEights {
    return RowEights(
        unpack(x8[row_of(lane, 0u) * steps + s]),
        unpack(x8[row_of(lane, 1u) * steps + s]),
        unpack(x8[row_of(lane, 2u) * steps + s]),
        unpack(x8[row_of(lane, 3u) * steps + s]),
        unpack(x8[row_of(lane, 4u) * steps + s]),
        unpack(x8[row_of(lane, 5u) * steps + s]),
        unpack(x8[row_of(lane, 6u) * steps + s]),
        unpack(x8[row_of(lane, 7u) * steps + s]),
    );
}

// Class c's eight features at step s, or zeros for a class the pipeline does not have.
fn w_eight(c: u32, s: u32, steps: u32) -> Eight {
    if c >= CLASSES {
        return Eight();
    }
    return unpack(w8[c * steps + s]);
}

// Eight features at step s of every class's row of W.
fn load_classes(s: u32, steps: u32) -> ClassEights {
    return ClassEights(
        w_eight(0u, s, steps),
        w_eight(1u, s, steps),
        w_eight(2u, s, steps),
        w_eight(3u, s, steps),
        w_eight(4u, s, steps),
        w_eight(5u, s, steps),
        w_eight(6u, s, steps),
        w_eight(7u, s, steps),
        w_eight(8u, s, steps),
        w_eight(9u, s, steps),
        w_eight(10u, s, steps),
        w_eight(11u, s, steps),
        w_eight(12u, s, steps),
        w_eight(13u, s, steps),
        w_eight(14u, s, steps),
        w_eight(15u, s, steps),
    );
}

fn dot8(a: Eight, b: Eight) -> f32 {
    return dot(a.low, b.low) + dot(a.high, b.high);
}

// z + x·Wᵀ over eight features, for one row; quads of classes the pipeline lacks stay zero.
fn logits_step(z: Classes, x: Eight, w: ClassEights) -> Classes {
    var out = z;
    out.q0 += vec4(dot8(x, w.c0), dot8(x, w.c1), dot8(x, w.c2), dot8(x, w.c3));
    if CLASSES > 4u {
        out.q1 += vec4(dot8(x, w.c4), dot8(x, w.c5), dot8(x, w.c6), dot8(x, w.c7));
    }
    if CLASSES > 8u {
        out.q2 += vec4(dot8(x, w.c8), dot8(x, w.c9), dot8(x, w.c10), dot8(x, w.c11));
    }
    if CLASSES > 12u {
        out.q3 += vec4(dot8(x, w.c12), dot8(x, w.c13), dot8(x, w.c14), dot8(x, w.c15));
    }
    return out;
}

fn add_classes(a: Classes, b: Classes) -> Classes {
    return Classes(a.q0 + b.q0, a.q1 + b.q1, a.q2 + b.q2, a.q3 + b.q3);
}

fn scale_classes(a: Classes, s: f32) -> Classes {
    return Classes(a.q0 * s, a.q1 * s, a.q2 * s, a.q3 * s);
}

// b[c], or 0 for a class the pipeline does not have.
fn bias_at(c: u32) -> f32 {
    if c >= CLASSES {
        return 0.0;
    }
    return b[c];
}

// The bias of every class.
fn bias() -> Classes {
    return Classes(
        vec4(bias_at(0u), bias_at(1u), bias_at(2u), bias_at(3u)),
        vec4(bias_at(4u), bias_at(5u), bias_at(6u), bias_at(7u)),
        vec4(bias_at(8u), bias_at(9u), bias_at(10u), bias_at(11u)),
        vec4(bias_at(12u), bias_at(13u), bias_at(14u), bias_at(15u)),
    );
}

// One row's loss and dz (unscaled), as small_head.wgsl's row_loss_and_grad computes them.
struct RowLoss {
    dz: Classes,
    loss: f32,
    counted: f32, // 1 when the row counts toward the mean
    bad: bool, // its target is neither ignored nor a class
}

fn max4(v: vec4<f32>) -> f32 {
    return max(max(v.x, v.y), max(v.z, v.w));
}

fn sum4(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

fn row_loss(z: Classes, t: i32, real: bool) -> RowLoss {
    let lowest = vec4(-3.4028235e38);
    let z0 = select(lowest, z.q0, live(0u));
    let z1 = select(lowest, z.q1, live(1u));
    let z2 = select(lowest, z.q2, live(2u));
    let z3 = select(lowest, z.q3, live(3u));
    let m = max(max(max4(z0), max4(z1)), max(max4(z2), max4(z3)));
    let e = sum4(select(vec4(0.0), exp(z0 - m), live(0u)))
        + sum4(select(vec4(0.0), exp(z1 - m), live(1u)))
        + sum4(select(vec4(0.0), exp(z2 - m), live(2u)))
        + sum4(select(vec4(0.0), exp(z3 - m), live(3u)));
    let log_sum = log(e);
    // Log-probabilities, zero past the classes.
    let l0 = select(vec4(0.0), (z0 - m) - log_sum, live(0u));
    let l1 = select(vec4(0.0), (z1 - m) - log_sum, live(1u));
    let l2 = select(vec4(0.0), (z2 - m) - log_sum, live(2u));
    let l3 = select(vec4(0.0), (z3 - m) - log_sum, live(3u));
    let in_range = t >= 0 && u32(t) < CLASSES;
    let counted = real && t != p.ignore_index && in_range;
    let eps = p.smoothing;
    let spread = eps / f32(CLASSES);
    let cls = vec4(t) - vec4(0, 1, 2, 3);
    let is0 = cls == vec4(0);
    let is1 = cls == vec4(4);
    let is2 = cls == vec4(8);
    let is3 = cls == vec4(12);
    let nll = -(sum4(select(vec4(0.0), l0, is0)) + sum4(select(vec4(0.0), l1, is1))
        + sum4(select(vec4(0.0), l2, is2)) + sum4(select(vec4(0.0), l3, is3)));
    let smoothing_term = -((sum4(l0) + sum4(l1)) + (sum4(l2) + sum4(l3)));
    var out: RowLoss;
    out.dz = Classes(
        select(vec4(0.0), row_grad(l0, is0, eps, spread), live(0u) & vec4(counted)),
        select(vec4(0.0), row_grad(l1, is1, eps, spread), live(1u) & vec4(counted)),
        select(vec4(0.0), row_grad(l2, is2, eps, spread), live(2u) & vec4(counted)),
        select(vec4(0.0), row_grad(l3, is3, eps, spread), live(3u) & vec4(counted)),
    );
    out.loss = select(0.0, (1.0 - eps) * nll + spread * smoothing_term, counted);
    out.counted = select(0.0, 1.0, counted);
    out.bad = real && t != p.ignore_index && !in_range;
    return out;
}

// d(loss)/d(logits) for four classes from their log-probabilities.
fn row_grad(logp: vec4<f32>, is_target: vec4<bool>, eps: f32, spread: f32) -> vec4<f32> {
    let prob = exp(logp);
    let hard = prob - select(vec4(0.0), vec4(1.0), is_target);
    let soft = prob * f32(CLASSES) - 1.0;
    return (1.0 - eps) * hard + spread * soft;
}

// Σ over the lane's rows of dz[row, c] · x[row, ·] in order, then across the lanes (c a
// constant at every call).
fn class_grad(dz: RowClasses, x: RowEights, c: u32) -> Eight {
    let first = vec4(class_at(dz.j0, c), class_at(dz.j1, c), class_at(dz.j2, c), class_at(dz.j3, c));
    let last = vec4(class_at(dz.j4, c), class_at(dz.j5, c), class_at(dz.j6, c), class_at(dz.j7, c));
    let mine = quad_fma(quad_fma(Eight(), first, x.j0, x.j1, x.j2, x.j3), last, x.j4, x.j5, x.j6, x.j7);
    return Eight(subgroupAdd(mine.low), subgroupAdd(mine.high));
}

// dW's eight features at step s for class c, when the pipeline has it.
fn store_class_grad(dz: RowClasses, x: RowEights, c: u32, s: u32, steps: u32) {
    if c < CLASSES {
        dw8[c * steps + s] = pack(class_grad(dz, x, c));
    }
}

// acc + d.x·w0 + d.y·w1 + d.z·w2 + d.w·w3 in that order, eight features.
fn quad_fma(acc: Eight, d: vec4<f32>, w0: Eight, w1: Eight, w2: Eight, w3: Eight) -> Eight {
    var low = fma(vec4(d.x), w0.low, acc.low);
    var high = fma(vec4(d.x), w0.high, acc.high);
    low = fma(vec4(d.y), w1.low, low);
    high = fma(vec4(d.y), w1.high, high);
    low = fma(vec4(d.z), w2.low, low);
    high = fma(vec4(d.z), w2.high, high);
    low = fma(vec4(d.w), w3.low, low);
    high = fma(vec4(d.w), w3.high, high);
    return Eight(low, high);
}

// Σ_c dz[row, c] · W[c, ·] over eight features, then the gate from x: one row of dx.
fn row_grad_x(dz: Classes, w: ClassEights, x: Eight) -> Eight {
    var acc = quad_fma(Eight(), dz.q0, w.c0, w.c1, w.c2, w.c3);
    if CLASSES > 4u {
        acc = quad_fma(acc, dz.q1, w.c4, w.c5, w.c6, w.c7);
    }
    if CLASSES > 8u {
        acc = quad_fma(acc, dz.q2, w.c8, w.c9, w.c10, w.c11);
    }
    if CLASSES > 12u {
        acc = quad_fma(acc, dz.q3, w.c12, w.c13, w.c14, w.c15);
    }
    if GATE {
        acc = Eight(select(vec4(0.0), acc.low, x.low > vec4(0.0)), select(vec4(0.0), acc.high, x.high > vec4(0.0)));
    }
    return acc;
}

// dx's eight features at step s of the lane's row j, when that row exists.
fn store_row_grad(lane: u32, j: u32, dz: Classes, w: ClassEights, x: Eight, s: u32, steps: u32) {
    if 8u * lane + j < p.rows {
        dx8[(8u * lane + j) * steps + s] = pack(row_grad_x(dz, w, x));
    }
}

@compute @workgroup_size(8)
fn small_head_lanes(@builtin(subgroup_invocation_id) lane: u32) {
    let steps = p.features / 8u;
    // The logits of the lane's rows.
    var z = RowClasses();
    for (var s = 0u; s < steps; s++) {
        let x = load_rows(lane, s, steps);
        let w = load_classes(s, steps);
        z = RowClasses(
            logits_step(z.j0, x.j0, w),
            logits_step(z.j1, x.j1, w),
            logits_step(z.j2, x.j2, w),
            logits_step(z.j3, x.j3, w),
            logits_step(z.j4, x.j4, w),
            logits_step(z.j5, x.j5, w),
            logits_step(z.j6, x.j6, w),
            logits_step(z.j7, x.j7, w),
        );
    }
    let bias = bias();
    // Each row's loss and dz, then their sums over the lane's rows in order.
    let t = array(
        targets[row_of(lane, 0u)], targets[row_of(lane, 1u)], targets[row_of(lane, 2u)],
        targets[row_of(lane, 3u)], targets[row_of(lane, 4u)], targets[row_of(lane, 5u)],
        targets[row_of(lane, 6u)], targets[row_of(lane, 7u)],
    );
    let first = 8u * lane;
    let r0 = row_loss(add_classes(z.j0, bias), t[0], first < p.rows);
    let r1 = row_loss(add_classes(z.j1, bias), t[1], first + 1u < p.rows);
    let r2 = row_loss(add_classes(z.j2, bias), t[2], first + 2u < p.rows);
    let r3 = row_loss(add_classes(z.j3, bias), t[3], first + 3u < p.rows);
    let r4 = row_loss(add_classes(z.j4, bias), t[4], first + 4u < p.rows);
    let r5 = row_loss(add_classes(z.j5, bias), t[5], first + 5u < p.rows);
    let r6 = row_loss(add_classes(z.j6, bias), t[6], first + 6u < p.rows);
    let r7 = row_loss(add_classes(z.j7, bias), t[7], first + 7u < p.rows);
    let loss = ((r0.loss + r1.loss) + (r2.loss + r3.loss)) + ((r4.loss + r5.loss) + (r6.loss + r7.loss));
    let counted = ((r0.counted + r1.counted) + (r2.counted + r3.counted))
        + ((r4.counted + r5.counted) + (r6.counted + r7.counted));
    // A target neither ignored nor a class: flagged once, as small_head.wgsl does.
    var bad_target = t[7];
    bad_target = select(bad_target, t[6], r6.bad);
    bad_target = select(bad_target, t[5], r5.bad);
    bad_target = select(bad_target, t[4], r4.bad);
    bad_target = select(bad_target, t[3], r3.bad);
    bad_target = select(bad_target, t[2], r2.bad);
    bad_target = select(bad_target, t[1], r1.bad);
    bad_target = select(bad_target, t[0], r0.bad);
    let bad = ((r0.bad || r1.bad) || (r2.bad || r3.bad)) || ((r4.bad || r5.bad) || (r6.bad || r7.bad));
    if bad {
        if atomicExchange(&fault[0], 1) == 0 {
            atomicStore(&fault[1], bad_target);
        }
    }
    let total = vec2(subgroupAdd(loss), subgroupAdd(counted));
    // The mean's gradient: 1 / (rows counted), 0 when none is.
    let g = select(0.0, 1.0 / total.y, total.y != 0.0);
    let dz = RowClasses(
        scale_classes(r0.dz, g),
        scale_classes(r1.dz, g),
        scale_classes(r2.dz, g),
        scale_classes(r3.dz, g),
        scale_classes(r4.dz, g),
        scale_classes(r5.dz, g),
        scale_classes(r6.dz, g),
        scale_classes(r7.dz, g),
    );
    // db: Σ over the lane's rows in order, then across the lanes.
    let lane_db = add_classes(add_classes(add_classes(dz.j0, dz.j1), add_classes(dz.j2, dz.j3)),
        add_classes(add_classes(dz.j4, dz.j5), add_classes(dz.j6, dz.j7)));
    let all_db = Classes(subgroupAdd(lane_db.q0), subgroupAdd(lane_db.q1), subgroupAdd(lane_db.q2), subgroupAdd(lane_db.q3));
    for (var c = 0u; c < CLASSES; c++) {
        db[c] = class_at(all_db, c);
    }
    out[min(cursor[0], arrayLength(&out) - 1u)] = select(nan(), total.x / total.y, total.y != 0.0);
    // dW and dx, eight features at a time.
    for (var s = 0u; s < steps; s++) {
        let x = load_rows(lane, s, steps);
        store_class_grad(dz, x, 0u, s, steps);
        store_class_grad(dz, x, 1u, s, steps);
        store_class_grad(dz, x, 2u, s, steps);
        store_class_grad(dz, x, 3u, s, steps);
        store_class_grad(dz, x, 4u, s, steps);
        store_class_grad(dz, x, 5u, s, steps);
        store_class_grad(dz, x, 6u, s, steps);
        store_class_grad(dz, x, 7u, s, steps);
        store_class_grad(dz, x, 8u, s, steps);
        store_class_grad(dz, x, 9u, s, steps);
        store_class_grad(dz, x, 10u, s, steps);
        store_class_grad(dz, x, 11u, s, steps);
        store_class_grad(dz, x, 12u, s, steps);
        store_class_grad(dz, x, 13u, s, steps);
        store_class_grad(dz, x, 14u, s, steps);
        store_class_grad(dz, x, 15u, s, steps);
        if DX {
            let w = load_classes(s, steps);
            store_row_grad(lane, 0u, dz.j0, w, x.j0, s, steps);
            store_row_grad(lane, 1u, dz.j1, w, x.j1, s, steps);
            store_row_grad(lane, 2u, dz.j2, w, x.j2, s, steps);
            store_row_grad(lane, 3u, dz.j3, w, x.j3, s, steps);
            store_row_grad(lane, 4u, dz.j4, w, x.j4, s, steps);
            store_row_grad(lane, 5u, dz.j5, w, x.j5, s, steps);
            store_row_grad(lane, 6u, dz.j6, w, x.j6, s, steps);
            store_row_grad(lane, 7u, dz.j7, w, x.j7, s, steps);
        }
    }
}
