//! Fuzz target: untrusted bytes → hardened decode (default limits) → PDQ,
//! including the dihedral variants. Any panic, or a `DecoderPanic` error
//! (a panic caught inside `decode_image`), is a bug.
#![no_main]

use echotrace_signals::decode::{decode_image, DecodeError, DecodeLimits, DecodeOptions};
use echotrace_signals::pdq::PdqHasher;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options so both paths get exercised.
    let exif_orient = data.first().is_some_and(|b| b & 1 == 1);
    let opts = DecodeOptions { exif_orient };
    match decode_image(data, &DecodeLimits::default(), &opts) {
        Ok(img) => {
            assert_eq!(
                img.rgb.len() as u64,
                u64::from(img.width) * u64::from(img.height) * 3,
                "decoded buffer size"
            );
            let mut hasher = PdqHasher::new();
            let plain = hasher.hash_rgb8(&img.rgb, img.width, img.height);
            assert!(plain.is_ok(), "pdq on a decoded image failed: {plain:?}");
            let dih = hasher.hash_rgb8_dihedral(&img.rgb, img.width, img.height);
            assert!(dih.is_ok(), "pdq dihedral failed: {dih:?}");
        }
        Err(DecodeError::DecoderPanic { format }) => panic!("{format} decoder panicked"),
        Err(_) => {}
    }
});
