//! The text-presence gate (`ocr::text_presence`) on real renders: the
//! generated claim cards of the OCR tests and bench (Pango-shaped English
//! and Arabic, `crates/cli/tests/ocr_common`) must pass it, the PDQ fixture
//! photos (text-free) must not. A lookup image is OCRed only when the gate
//! fires, so a card it misses cannot match through `ocr_text`.
//!
//! Needs `pango-view` (Debian `pango1.0-tools`), the fonts of
//! `ocr_common` and `../shared/fixtures`; all are missing → the test fails.

#[path = "../../cli/tests/ocr_common/mod.rs"]
mod ocr_common;

use std::path::{Path, PathBuf};

use echotrace_signals::decode::decode_image;
use echotrace_signals::ocr::{text_presence, TextPresence};
use ocr_common::{Background, Design, Lang, Rng};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures");
    assert!(
        p.is_dir(),
        "{} is missing: the suite needs ../shared/fixtures",
        p.display()
    );
    p
}

fn presence(bytes: &[u8]) -> TextPresence {
    let img = decode_image(bytes, &Default::default(), &Default::default())
        .unwrap_or_else(|e| panic!("decoding a card: {e}"));
    text_presence(&img.rgb, img.width, img.height)
}

fn tmpdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("et-presence-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d); // left by an earlier run with this pid
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("temp dir: {e}"));
    d
}

/// Tightly set designs of the kind the gate used to miss (its lines need
/// an empty row between them): large Amiri and Noto Naskh Arabic, whose
/// dots, descenders and ascenders cross the space between lines, and
/// small cramped lines after JPEG q30, light text on dark and dark text on
/// light gradients and photos.
fn crowded_designs(lang: Lang) -> Vec<Design> {
    let d = |font: &str, size_pt, width, background, quality| Design {
        font: font.into(),
        size_pt,
        width,
        align: "center",
        background,
        logo: false,
        quality,
    };
    let light = Background::Gradient([235, 238, 222], [208, 212, 236]);
    let dark = Background::Gradient([45, 40, 52], [28, 34, 30]);
    match lang {
        Lang::Ar => vec![
            d("Amiri", 32, 960, light.clone(), 60),
            d("Amiri", 28, 700, dark.clone(), 45),
            d("Amiri Bold", 32, 960, Background::Photo(1), 75),
            d("Noto Naskh Arabic", 28, 820, light.clone(), 30),
            d("DejaVu Sans", 16, 960, dark.clone(), 30),
            d(
                "Noto Sans Arabic",
                16,
                820,
                Background::Plain([30, 30, 40]),
                30,
            ),
        ],
        Lang::En => vec![
            d("DejaVu Sans Bold", 16, 1100, Background::Photo(3), 30),
            d("Noto Serif", 32, 700, light, 45),
            d("DejaVu Sans", 16, 960, dark, 30),
        ],
    }
}

#[test]
fn the_gate_fires_on_cards_and_not_on_text_free_photos() {
    let fixtures = fixtures();
    let photos = ocr_common::photos(&fixtures);
    let tmp = tmpdir();
    let mut missed = Vec::new();
    let mut total = [0usize; 2];
    let mut fired = [0usize; 2];
    for (lang, seed) in [(Lang::En, 1881), (Lang::Ar, 1882)] {
        let li = usize::from(lang == Lang::Ar);
        let mut rng = Rng::new(seed);
        // The crowded designs, then random designs of the card generator.
        let mut designs = crowded_designs(lang);
        designs.extend((0..24).map(|_| ocr_common::design(lang, &mut rng, photos.len())));
        for (i, design) in designs.iter().enumerate() {
            let text = ocr_common::statement(lang, &mut rng);
            let card = ocr_common::render_card(&text, lang, design, &photos, &tmp);
            let p = presence(&card);
            total[li] += 1;
            fired[li] += usize::from(p.likely);
            if !p.likely {
                let kept = tmp.join(format!("missed-{lang:?}-{i}.jpg"));
                let _ = std::fs::write(&kept, &card);
                missed.push(format!("{} {design:?}: {p:?}", kept.display()));
            }
        }
    }
    if missed.is_empty() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        missed.is_empty(),
        "the gate fired on {}/{} English and {}/{} Arabic cards; missed:\n{}",
        fired[0],
        total[0],
        fired[1],
        total[1],
        missed.join("\n")
    );

    // The PDQ fixture photos have no text: none costs an OCR.
    let mut photos_seen = 0;
    let mut fired_on = Vec::new();
    for dir in ["bridge-mods", "labelme", "dih", "exif-rotn"] {
        let rd = std::fs::read_dir(fixtures.join("pdq/images").join(dir))
            .unwrap_or_else(|e| panic!("fixture dir {dir}: {e}"));
        for e in rd.flatten() {
            let bytes = std::fs::read(e.path()).unwrap_or_else(|err| panic!("{err}"));
            let p = presence(&bytes);
            photos_seen += 1;
            if p.likely {
                fired_on.push(format!("{}: {p:?}", e.path().display()));
            }
        }
    }
    assert!(photos_seen >= 30, "only {photos_seen} fixture photos");
    assert!(
        fired_on.is_empty(),
        "the gate fired on text-free photos:\n{}",
        fired_on.join("\n")
    );
}
