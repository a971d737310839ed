// adam_wide and adadelta_wide: Adam and Adadelta over eight elements per invocation through
// 32-byte loads and stores, for adapters with 64-bit integers: half the storage accesses of
// vec4s, an eighth of scalars'. The host prepends optim.wgsl (whose adam_update and
// adadelta_update these apply) and int64.wgsl.

@group(0) @binding(2) var<storage, read> grad8: array<vec4<u64>>;
@group(0) @binding(3) var<storage, read_write> param8: array<vec4<u64>>;
@group(0) @binding(4) var<storage, read_write> m8: array<vec4<u64>>;
@group(0) @binding(5) var<storage, read_write> v8: array<vec4<u64>>;
@group(0) @binding(6) var<storage, read_write> v_max8: array<vec4<u64>>;

// Elements 8i..8i+7 for i < len / 8.
@compute @workgroup_size(256)
fn adam_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Before any branch: one load for all lanes on CPU adapters.
    let f = factors[2];
    let decay = factors[0].y;
    let i = element(wg, groups, lid);
    advance_counter_once(wg, lid);
    if i >= p.len / 8u {
        return;
    }
    let g = unpack(grad8[i]);
    let w = unpack(param8[i]);
    let m = unpack(m8[i]);
    let v = unpack(v8[i]);
    var v_max = Eight();
    if AMSGRAD {
        v_max = unpack(v_max8[i]);
    }
    let low = adam_update(g.low, AdamState(w.low, m.low, v.low, v_max.low), f, decay);
    let high = adam_update(g.high, AdamState(w.high, m.high, v.high, v_max.high), f, decay);
    param8[i] = pack(Eight(low.w, high.w));
    m8[i] = pack(Eight(low.m, high.m));
    v8[i] = pack(Eight(low.v, high.v));
    if AMSGRAD {
        v_max8[i] = pack(Eight(low.v_max, high.v_max));
    }
}

// Elements 8i..8i+7 for i < len / 8.
@compute @workgroup_size(256)
fn adadelta_wide(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let lr = factors[0].x;
    let i = element(wg, groups, lid);
    advance_counter_once(wg, lid);
    if i >= p.len / 8u {
        return;
    }
    let g = unpack(grad8[i]);
    let w = unpack(param8[i]);
    let square_avg = unpack(m8[i]);
    let acc_delta = unpack(v8[i]);
    let low = adadelta_update(g.low, AdadeltaState(w.low, square_avg.low, acc_delta.low), lr);
    let high = adadelta_update(g.high, AdadeltaState(w.high, square_avg.high, acc_delta.high), lr);
    param8[i] = pack(Eight(low.w, high.w));
    m8[i] = pack(Eight(low.square_avg, high.square_avg));
    v8[i] = pack(Eight(low.acc_delta, high.acc_delta));
}
