//! The IDX parser never panics: arbitrary bytes, valid files with random damage, and random
//! headers all give a parsed array or an error.

use proptest::prelude::*;
use std::path::Path;
use wgml::data::idx;

fn valid(dims: &[u32]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    let len: u32 = dims.iter().product();
    out.extend((0..len).map(|i| i as u8));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = idx::parse(&bytes, Path::new("fuzz"));
    }

    #[test]
    fn gzip_magic_then_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut data = vec![0x1f, 0x8b];
        data.extend(bytes);
        prop_assert!(idx::parse(&data, Path::new("fuzz")).is_err());
    }

    #[test]
    fn damaged_valid_files_parse_or_fail_cleanly(
        dims in proptest::collection::vec(0u32..6, 1..4),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = valid(&dims);
        let n = bytes.len();
        for (at, value) in flips {
            bytes[at % n] = value;
        }
        bytes.truncate(cut % (n + 1));
        if let Ok(array) = idx::parse(&bytes, Path::new("fuzz")) {
            prop_assert_eq!(array.data.len(), array.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn undamaged_files_round_trip(dims in proptest::collection::vec(0u32..6, 1..4)) {
        let array = idx::parse(&valid(&dims), Path::new("fuzz")).unwrap();
        prop_assert_eq!(array.dims, dims.iter().map(|&d| d as usize).collect::<Vec<_>>());
    }
}
