// Eight f32 through one 32-byte load or store: a vec4<u64> whose u64s each hold two f32,
// element 2j in the low half and 2j + 1 in the high half, as little-endian memory lays them out.
// For adapters with 64-bit integers (SHADER_INT64) where a storage access costs the same
// whatever its width (CPU adapters loop over the SIMD lanes for each one). Kernels that use
// these are compiled with this file in front.

// Eight f32, as the two vec4s of elements 0..3 and 4..7.
struct Eight {
    low: vec4<f32>,
    high: vec4<f32>,
}

fn low_half(x: u64) -> f32 {
    return bitcast<f32>(u32(x & 0xfffffffflu));
}

fn high_half(x: u64) -> f32 {
    return bitcast<f32>(u32(x >> 32u));
}

fn unpack(x: vec4<u64>) -> Eight {
    return Eight(
        vec4(low_half(x.x), high_half(x.x), low_half(x.y), high_half(x.y)),
        vec4(low_half(x.z), high_half(x.z), low_half(x.w), high_half(x.w)),
    );
}

fn join(low: f32, high: f32) -> u64 {
    return u64(bitcast<u32>(low)) | (u64(bitcast<u32>(high)) << 32u);
}

fn pack(e: Eight) -> vec4<u64> {
    return vec4(
        join(e.low.x, e.low.y),
        join(e.low.z, e.low.w),
        join(e.high.x, e.high.y),
        join(e.high.z, e.high.w),
    );
}
