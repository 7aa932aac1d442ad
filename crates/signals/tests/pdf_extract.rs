//! In-process PDF extraction: text, embedded JPEG and Flate images, and
//! malformed or hostile PDFs (errors, never panics).

mod pdf_common;

use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions};
use echotrace_signals::pdf::{extract, PdfError, PdfLimits};
use echotrace_signals::pdq::PdqHasher;
use echotrace_signals::text::{compare_text, text_signature};
use pdf_common::*;

#[test]
fn text_and_images() {
    let (w, h) = (96, 72);
    let rgb1 = pattern_rgb(w, h, 1);
    let jpg = jpeg_of(&rgb1, w, h);
    let rgb2 = pattern_rgb(80, 60, 7);
    let pdf = build_pdf(LINES, Some((&jpg, w, h)), Some((&rgb2, 80, 60)));
    let out = extract(&pdf, &PdfLimits::default()).expect("extracts");
    assert_eq!(out.pages, 1);
    assert!(
        out.text.contains("Storm brings flooding"),
        "text: {:?}",
        out.text
    );
    assert!(out.text.contains("Fenwick"), "text: {:?}", out.text);
    assert_eq!(out.images.len(), 2, "warnings: {:?}", out.warnings);

    let mut pdq = PdqHasher::new();
    let decoded = decode_image(&jpg, &DecodeLimits::default(), &DecodeOptions::default()).unwrap();
    let want_jpeg = pdq.hash_rgb8(&decoded.rgb, w, h).unwrap();
    let want_flate = pdq.hash_rgb8(&rgb2, 80, 60).unwrap();
    let jpeg_img = out
        .images
        .iter()
        .find(|i| i.filter == "DCTDecode")
        .expect("jpeg image");
    let flate_img = out
        .images
        .iter()
        .find(|i| i.filter == "FlateDecode")
        .expect("flate image");
    assert_eq!((jpeg_img.width, jpeg_img.height), (w, h));
    assert_eq!(jpeg_img.pdq, want_jpeg.hash.to_hex());
    assert_eq!(flate_img.pdq, want_flate.hash.to_hex());
    assert_eq!(flate_img.quality, want_flate.quality);

    // The extracted text matches the same text hashed directly.
    let direct = text_signature(&LINES.join(" "));
    let from_pdf = text_signature(&out.text);
    let c = compare_text(&direct, &from_pdf).unwrap();
    assert!(c.is_match && c.jaccard > 0.9, "{c:?}");
}

#[test]
fn not_a_pdf_and_empty() {
    assert_eq!(extract(b"", &PdfLimits::default()), Err(PdfError::Empty));
    assert_eq!(
        extract(b"hello world", &PdfLimits::default()),
        Err(PdfError::NotPdf)
    );
}

#[test]
fn truncated_pdfs_are_errors_or_partial() {
    let rgb = pattern_rgb(64, 64, 3);
    let pdf = build_pdf(
        LINES,
        Some((&jpeg_of(&rgb, 64, 64), 64, 64)),
        Some((&rgb, 64, 64)),
    );
    for cut in [
        6,
        20,
        pdf.len() / 4,
        pdf.len() / 2,
        pdf.len() - 30,
        pdf.len() - 1,
    ] {
        // Must return (error or a best-effort extract), never panic.
        let _ = extract(&pdf[..cut], &PdfLimits::default());
    }
    assert!(
        extract(&pdf[..pdf.len() / 3], &PdfLimits::default()).is_err()
            || extract(&pdf[..pdf.len() / 3], &PdfLimits::default())
                .is_ok_and(|e| !e.text.contains("Fenwick"))
    );
}

#[test]
fn random_bytes_after_header() {
    let mut state = 0x1234_5678_9abc_def0u64;
    for len in [10usize, 100, 1000, 10_000, 100_000] {
        let mut v = b"%PDF-1.4\n".to_vec();
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.push(state as u8);
        }
        assert!(
            extract(&v, &PdfLimits::default()).is_err(),
            "random {len} bytes parsed as a PDF"
        );
    }
}

#[test]
fn huge_object_stream_is_an_error() {
    // An object stream that claims ten million objects and a huge offset.
    let objstm = {
        let body = "1 0 2 10 3 20 ".repeat(500);
        let compressed = zlib(body.as_bytes());
        let mut o = format!(
            "<< /Type /ObjStm /N 10000000 /First 999999999 /Filter /FlateDecode /Length {} >>\nstream\n",
            compressed.len()
        )
        .into_bytes();
        o.extend_from_slice(&compressed);
        o.extend_from_slice(b"\nendstream");
        o
    };
    let pdf = assemble(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec(),
        objstm,
    ]);
    match extract(&pdf, &PdfLimits::default()) {
        Err(_) => {}
        Ok(e) => assert!(e.text.is_empty() && e.images.is_empty(), "{e:?}"),
    }
}

#[test]
fn image_bomb_is_refused_before_inflating() {
    // 20 MB of zeros declared as a 50000x50000 image: refused by the pixel
    // limit without inflating.
    let zeros = vec![0u8; 20 * 1024 * 1024];
    let compressed = zlib(&zeros);
    let mut img = format!(
        "<< /Type /XObject /Subtype /Image /Width 50000 /Height 50000 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode /Length {} >>\nstream\n",
        compressed.len()
    )
    .into_bytes();
    img.extend_from_slice(&compressed);
    img.extend_from_slice(b"\nendstream");
    let pdf = assemble(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec(),
        img,
    ]);
    let out = extract(&pdf, &PdfLimits::default()).expect("document itself is fine");
    assert!(out.images.is_empty());
    assert!(
        out.warnings.iter().any(|w| w.contains("size limit")),
        "{:?}",
        out.warnings
    );
}

#[test]
fn limits_are_enforced() {
    let pdf = build_pdf(LINES, None, None);
    let tight = PdfLimits {
        max_file_bytes: 100,
        ..PdfLimits::default()
    };
    assert!(matches!(
        extract(&pdf, &tight),
        Err(PdfError::TooLarge { .. })
    ));
    let few = PdfLimits {
        max_objects: 2,
        ..PdfLimits::default()
    };
    assert!(matches!(
        extract(&pdf, &few),
        Err(PdfError::TooManyObjects { .. })
    ));
    let short = PdfLimits {
        max_text_bytes: 20,
        ..PdfLimits::default()
    };
    let out = extract(&pdf, &short).unwrap();
    assert!(out.text.len() <= 20);
}
