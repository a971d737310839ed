// counter0[0] += 1, and the same for counter1..counter3 up to COUNTERS of them: moves a step's
// counters on (a batch cursor, an optimizer's step count) in one dispatch, with no host round
// trip. Other kernels that count take this file after their own (optim.wgsl's adam_prepare),
// hence bindings apart from theirs; the host binds the first counter again in unused places.

override COUNTERS: u32 = 1u;

@group(0) @binding(12) var<storage, read_write> counter0: array<u32>;
@group(0) @binding(13) var<storage, read_write> counter1: array<u32>;
@group(0) @binding(14) var<storage, read_write> counter2: array<u32>;
@group(0) @binding(15) var<storage, read_write> counter3: array<u32>;

fn advance_counters() {
    counter0[0] += 1u;
    if COUNTERS > 1u {
        counter1[0] += 1u;
    }
    if COUNTERS > 2u {
        counter2[0] += 1u;
    }
    if COUNTERS > 3u {
        counter3[0] += 1u;
    }
}

@compute @workgroup_size(1)
fn advance() {
    advance_counters();
}
