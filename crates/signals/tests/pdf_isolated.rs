//! PDF extraction in a child process with time and memory limits.
//!
//! `harness = false`: this binary is both the test runner and the child.
//! Run with `__extract-pdf` it behaves like the CLI's hidden subcommand;
//! `__sleep` and `__alloc` simulate a hung and a memory-hungry extractor.

mod pdf_common;

use echotrace_signals::isolate::{
    extract_pdf_with_args, run_isolated, IsolateError, IsolationLimits,
};
use echotrace_signals::pdf::{run_child, PdfError, PdfLimits};
use pdf_common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn me() -> PathBuf {
    std::env::current_exe().expect("current exe")
}

fn limits(timeout_ms: u64, mem_mb: u64) -> IsolationLimits {
    IsolationLimits {
        timeout: Duration::from_millis(timeout_ms),
        memory_bytes: mem_mb << 20,
        ..IsolationLimits::default()
    }
}

fn good_pdf_round_trips() {
    let rgb = pattern_rgb(64, 48, 2);
    let pdf = build_pdf(
        LINES,
        Some((&jpeg_of(&rgb, 64, 48), 64, 48)),
        Some((&rgb, 64, 48)),
    );
    let out = extract_pdf_with_args(&me(), &["__extract-pdf"], &pdf, &limits(20_000, 1024))
        .expect("child extracts");
    assert!(out.text.contains("Fenwick"), "{out:?}");
    assert_eq!(out.images.len(), 2);
    let inproc = echotrace_signals::pdf::extract(&pdf, &PdfLimits::default()).unwrap();
    assert_eq!(out, inproc, "child and in-process extraction agree");
}

fn garbage_is_a_pdf_error() {
    let err = extract_pdf_with_args(
        &me(),
        &["__extract-pdf"],
        b"%PDF-1.4 garbage garbage",
        &limits(20_000, 1024),
    )
    .unwrap_err();
    assert!(
        matches!(err, IsolateError::Pdf(PdfError::Malformed(_))),
        "{err:?}"
    );
    let err = extract_pdf_with_args(
        &me(),
        &["__extract-pdf"],
        b"not a pdf",
        &limits(20_000, 1024),
    )
    .unwrap_err();
    assert!(
        matches!(err, IsolateError::Pdf(PdfError::NotPdf)),
        "{err:?}"
    );
}

fn hung_child_is_killed() {
    let t = Instant::now();
    let err =
        extract_pdf_with_args(&me(), &["__sleep"], b"%PDF-1.4", &limits(300, 1024)).unwrap_err();
    assert!(matches!(err, IsolateError::Timeout(_)), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

fn memory_hog_is_stopped() {
    let err = run_isolated(&me(), &["__alloc"], b"", &limits(20_000, 256)).unwrap_err();
    assert!(matches!(err, IsolateError::Signaled { .. }), "{err:?}");
}

fn decompression_bomb_is_stopped() {
    // The page content inflates to 200 MiB; the child may use 96 MiB.
    let zeros = vec![b' '; 200 << 20];
    let compressed = zlib(&zeros);
    drop(zeros);
    let mut content = format!(
        "<< /Filter /FlateDecode /Length {} >>\nstream\n",
        compressed.len()
    )
    .into_bytes();
    content.extend_from_slice(&compressed);
    content.extend_from_slice(b"\nendstream");
    let pdf = assemble(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
        content,
    ]);
    // The extractor measures a Flate stream before inflating it: the bomb
    // is skipped with a warning (no text from it), or, failing that, the
    // child dies at its memory limit. Never its 512 MiB of zeros.
    match extract_pdf_with_args(&me(), &["__extract-pdf"], &pdf, &limits(20_000, 96)) {
        Ok(out) => {
            assert!(out.text.is_empty(), "{out:?}");
            assert!(
                out.warnings
                    .iter()
                    .any(|w| w.contains("over the inflation limit")),
                "{out:?}"
            );
        }
        Err(err) => assert!(
            matches!(
                err,
                IsolateError::Signaled { .. } | IsolateError::Pdf(_) | IsolateError::Failed { .. }
            ),
            "{err:?}"
        ),
    }
}

fn missing_program_is_an_error() {
    let err = run_isolated(
        std::path::Path::new("/nonexistent/echotrace"),
        &[],
        b"",
        &limits(1000, 64),
    )
    .unwrap_err();
    assert!(matches!(err, IsolateError::Spawn { .. }), "{err:?}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__extract-pdf") => {
            let code = run_child(
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &PdfLimits::default(),
            );
            std::process::exit(code);
        }
        Some("__sleep") => {
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(0);
        }
        Some("__alloc") => {
            let mut v: Vec<Vec<u8>> = Vec::new();
            for _ in 0..64 {
                v.push(vec![1u8; 64 << 20]);
            }
            println!("{}", v.iter().map(|x| x.len()).sum::<usize>());
            std::process::exit(0);
        }
        _ => {}
    }
    let tests: &[(&str, fn())] = &[
        ("good_pdf_round_trips", good_pdf_round_trips),
        ("garbage_is_a_pdf_error", garbage_is_a_pdf_error),
        ("hung_child_is_killed", hung_child_is_killed),
        ("memory_hog_is_stopped", memory_hog_is_stopped),
        (
            "decompression_bomb_is_stopped",
            decompression_bomb_is_stopped,
        ),
        ("missing_program_is_an_error", missing_program_is_an_error),
    ];
    let mut failed = 0;
    for (name, f) in tests {
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!(
        "test result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        tests.len() - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
