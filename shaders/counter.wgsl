// counter[0] += 1: moves a step counter on between recorded steps (a batch cursor, an
// optimizer's step count), with no host round trip.

@group(0) @binding(0) var<storage, read_write> counter: array<u32>;

@compute @workgroup_size(1)
fn advance() {
    counter[0] += 1u;
}
