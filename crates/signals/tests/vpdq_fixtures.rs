//! vPDQ acceptance tests against Meta's reference outputs in
//! `../shared/fixtures/vpdq`. They need ffmpeg (CI installs it) and fail —
//! never skip — when it or the fixtures are missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use echotrace_signals::video::{
    compare, Ffmpeg, FfmpegConfig, VideoHasher, VpdqHash, VpdqMatchOptions, VpdqOptions,
};

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/vpdq"
    ));
    assert!(
        dir.join("videos").is_dir() && dir.join("expected").is_dir(),
        "../shared/fixtures is missing (expected {}); the vPDQ acceptance tests need it",
        dir.display()
    );
    dir
}

fn hasher() -> VideoHasher {
    match Ffmpeg::locate(FfmpegConfig::default()) {
        Ok(f) => VideoHasher::new(f),
        Err(e) => {
            panic!("these tests need ffmpeg and ffprobe on PATH (apt-get install ffmpeg): {e}")
        }
    }
}

fn videos() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures().join("videos"))
        .expect("read videos dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    v.sort();
    // 13 chair/pattern/doorknob clips plus test-padded-dimensions.
    assert_eq!(v.len(), 14, "expected the 14 fixture videos");
    v
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

struct FrameReport {
    name: String,
    frames: usize,
    reference_frames: usize,
    considered: usize,
    within: usize,
    mean_distance: f64,
    max_distance: u32,
    exact: usize,
}

/// Every frame of every video at native resolution, hashed once and shared.
fn every_frame_native() -> &'static BTreeMap<String, VpdqHash> {
    static CACHE: OnceLock<BTreeMap<String, VpdqHash>> = OnceLock::new();
    CACHE.get_or_init(|| hash_all(0.0, None))
}

fn hash_all(seconds_per_hash: f64, downsample: Option<u32>) -> BTreeMap<String, VpdqHash> {
    let h = hasher();
    videos()
        .into_iter()
        .map(|v| {
            let bytes = std::fs::read(&v).expect("read video");
            let s = h
                .hash(
                    &bytes,
                    &VpdqOptions {
                        seconds_per_hash,
                        downsample,
                    },
                )
                .unwrap_or_else(|e| panic!("{}: {e}", v.display()));
            (stem(&v), s.vpdq)
        })
        .collect()
}

fn reference(name: &str) -> VpdqHash {
    let path = fixtures().join("expected").join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    VpdqHash::from_reference_text(&text).expect("reference parses")
}

/// Hashes every frame and compares with the same-numbered reference frame.
fn every_frame_against_reference(downsample: Option<u32>) -> Vec<FrameReport> {
    let dir = fixtures();
    let scaled;
    let ours_all = match downsample {
        None => every_frame_native(),
        Some(_) => {
            scaled = hash_all(0.0, downsample);
            &scaled
        }
    };
    let mut reports = Vec::new();
    for video in videos() {
        let name = stem(&video);
        let suffix = if downsample.is_some() { "-128x128" } else { "" };
        let expected_path = dir.join("expected").join(format!("{name}{suffix}.txt"));
        if downsample.is_some() && name == "test-padded-dimensions" {
            // The reference publishes no 128x128 output for this one.
            continue;
        }
        let expected_text = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let expected = VpdqHash::from_reference_text(&expected_text).expect("reference parses");
        let ours = ours_all.get(&name).expect("hashed");
        let by_number: BTreeMap<u64, _> =
            ours.features.iter().map(|f| (f.frame_number, f)).collect();
        let (mut considered, mut within, mut exact, mut sum, mut max) =
            (0usize, 0usize, 0usize, 0u64, 0u32);
        for r in &expected.features {
            if r.quality < 50 {
                continue;
            }
            considered += 1;
            let Some(o) = by_number.get(&r.frame_number) else {
                continue;
            };
            let d = o.hash.distance(&r.hash);
            sum += u64::from(d);
            max = max.max(d);
            if d <= 31 {
                within += 1;
            }
            if d == 0 {
                exact += 1;
            }
            // Timestamps follow the reference formula exactly.
            assert_eq!(
                format!("{:.3}", o.timestamp),
                format!("{:.3}", r.timestamp),
                "{name} frame {} timestamp",
                r.frame_number
            );
        }
        reports.push(FrameReport {
            name,
            frames: ours.features.len(),
            reference_frames: expected.features.len(),
            considered,
            within,
            mean_distance: if considered > 0 {
                sum as f64 / considered as f64
            } else {
                0.0
            },
            max_distance: max,
            exact,
        });
    }
    reports
}

fn check(reports: &[FrameReport], label: &str, videos: usize) {
    assert_eq!(
        reports.len(),
        videos,
        "{label}: every video with an expected file"
    );
    let mut failures = Vec::new();
    for r in reports {
        let share = if r.considered > 0 {
            r.within as f64 * 100.0 / r.considered as f64
        } else {
            0.0
        };
        println!(
            "{label} {:<36} frames {:>4}/{:<4} q>=50 {:>4}  within31 {:>6.2}%  exact {:>6.2}%  mean {:>5.2}  max {:>3}",
            r.name,
            r.frames,
            r.reference_frames,
            r.considered,
            share,
            r.exact as f64 * 100.0 / r.considered.max(1) as f64,
            r.mean_distance,
            r.max_distance
        );
        if r.frames != r.reference_frames {
            failures.push(format!(
                "{}: {} frames, reference has {}",
                r.name, r.frames, r.reference_frames
            ));
        }
        if r.considered == 0 || share < 95.0 {
            failures.push(format!(
                "{}: only {share:.2}% of frames within distance 31",
                r.name
            ));
        }
    }
    assert!(failures.is_empty(), "{label}: {failures:#?}");
}

#[test]
fn every_frame_native_resolution_matches_reference() {
    check(&every_frame_against_reference(None), "native", 14);
}

#[test]
fn every_frame_128x128_matches_reference() {
    check(&every_frame_against_reference(Some(128)), "128x128", 13);
}

/// All 13 videos hashed at the default one frame per second, once.
fn one_second_hashes() -> &'static BTreeMap<String, VpdqHash> {
    static CACHE: OnceLock<BTreeMap<String, VpdqHash>> = OnceLock::new();
    CACHE.get_or_init(|| {
        let h = hasher();
        videos()
            .into_iter()
            .map(|v| {
                let bytes = std::fs::read(&v).expect("read video");
                let s = h
                    .hash(&bytes, &VpdqOptions::default())
                    .unwrap_or_else(|e| panic!("{}: {e}", v.display()));
                // md5/sha256 come with every video hash.
                assert_eq!(s.digests.md5.len(), 32);
                assert_eq!(s.digests.sha256.len(), 64);
                assert_eq!(s.every_nth, 30, "30 fps at 1 s per hash");
                (stem(&v), s.vpdq)
            })
            .collect()
    })
}

fn family(name: &str) -> &'static str {
    ["chair", "pattern", "doorknob"]
        .into_iter()
        .find(|f| name.starts_with(f))
        .unwrap_or("other")
}

/// The reference's own frames, sampled the way 1 s hashing samples them.
fn reference_sampled(name: &str, every_nth: u64) -> VpdqHash {
    let mut r = reference(name);
    r.features.retain(|f| f.frame_number % every_nth == 0);
    r
}

#[test]
fn one_second_sampling_decides_like_the_reference() {
    let ours = one_second_hashes();
    let opts = VpdqMatchOptions::default();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (a, ha) in ours {
        for (b, hb) in ours {
            if a == b || family(a) == "other" || family(b) == "other" {
                continue;
            }
            compared += 1;
            let c = compare(ha, hb, &opts);
            // Meta's vPDQ on the same frames (their every-frame output,
            // every 30th frame kept) decides the same way.
            let r = compare(&reference_sampled(a, 30), &reference_sampled(b, 30), &opts);
            println!(
                "1s {a:<32} vs {b:<32} ours {:>6.2}%/{:>6.2}% {:<5} reference {:>6.2}%/{:>6.2}% {}",
                c.query_match_pct,
                c.compared_match_pct,
                c.is_match,
                r.query_match_pct,
                r.compared_match_pct,
                r.is_match
            );
            if c.is_match != r.is_match {
                failures.push(format!("{a} vs {b}: ours {c:?}, reference {r:?}"));
            }
            if c.is_match && family(a) != family(b) {
                failures.push(format!("{a} vs {b}: cross-clip match {c:?}"));
            }
            if (c.query_match_pct - r.query_match_pct).abs() > 10.0 {
                failures.push(format!("{a} vs {b}: query share {c:?} vs reference {r:?}"));
            }
        }
    }
    assert_eq!(
        compared,
        13 * 12,
        "7 chair + 5 pattern + doorknob, ordered pairs"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Queries hashed at 1 s against stored videos hashed at every frame: the
/// sparse query frames always find their dense counterparts, so re-cuts and
/// re-encodes match whatever the sampling phase. This is how we expect
/// banks to be built (see ARCHITECTURE.md, Video).
#[test]
fn one_second_queries_match_every_frame_bank_entries_by_clip() {
    let queries = one_second_hashes();
    let bank = every_frame_native();
    let opts = VpdqMatchOptions::default();
    // Groups within which every ordered pair must match. The large-logo
    // variants and the pattern HD/SD pairs (different framing) do not match
    // even in Meta's own every-frame output, so they form their own groups.
    let groups: [&[&str]; 6] = [
        &[
            "chair-19-sd-bar",
            "chair-20-sd-bar",
            "chair-22-sd-grey-bar",
            "chair-22-sd-sepia-bar",
            "chair-22-with-small-logo-bar",
            "chair-orig-22-sd-bar",
        ],
        &["chair-22-with-large-logo-bar"],
        &["pattern-hd-no-bar", "pattern-longer-no-bar"],
        &["pattern-sd-grey-bar", "pattern-sd-with-small-logo-bar"],
        &["pattern-sd-with-large-logo-bar"],
        &["doorknob-hd-no-bar"],
    ];
    let group_of = |n: &str| groups.iter().position(|g| g.contains(&n));
    let mut failures = Vec::new();
    for (a, qa) in queries {
        for (b, hb) in bank {
            let (Some(ga), Some(gb)) = (group_of(a), group_of(b)) else {
                continue;
            };
            let c = compare(qa, hb, &opts);
            println!(
                "1s-vs-dense {a:<32} vs {b:<32} {:>6.2}% / {:>6.2}% {}",
                c.query_match_pct, c.compared_match_pct, c.is_match
            );
            if c.is_match != (ga == gb) {
                failures.push(format!("{a} vs {b}: {c:?}"));
            }
            if c.is_match && family(a) != family(b) {
                failures.push(format!("{a} vs {b}: cross-clip match"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn one_second_hash_round_trips_through_threatexchange_serialisation() {
    let hashes = one_second_hashes();
    let chair = hashes.get("chair-19-sd-bar").expect("chair-19 hashed");
    assert_eq!(chair.features.len(), 19, "564 frames at every 30th");
    let text = chair.to_signal_string();
    let parsed = VpdqHash::from_signal_str(&text).expect("round trip");
    assert_eq!(parsed.features.len(), chair.features.len());
    for (p, o) in parsed.features.iter().zip(&chair.features) {
        assert_eq!(p.hash, o.hash);
        assert_eq!(p.quality, o.quality);
        assert!((p.timestamp - o.timestamp).abs() < 0.0005);
    }
    // Frame 30 at 30 fps is 1.000 s; the reference's sampled frame numbers.
    let numbers: Vec<u64> = chair.features.iter().map(|f| f.frame_number).collect();
    assert_eq!(numbers, (0..19).map(|k| k * 30).collect::<Vec<_>>());
    assert!(
        text.contains(",1.000\""),
        "fixed three-decimal timestamps: {text:.200}"
    );
    // A signal hashed at 1 s matches the every-frame reference output.
    let dir = fixtures();
    let reference = VpdqHash::from_reference_text(
        &std::fs::read_to_string(dir.join("expected/chair-19-sd-bar.txt")).expect("read"),
    )
    .expect("parse");
    let c = compare(chair, &reference, &VpdqMatchOptions::default());
    assert!(c.is_match && c.query_match_pct == 100.0, "{c:?}");
}

/// The content dispatcher takes a video's digests from its one decoding
/// pass: both entry points (plain and robust) end with the MD5 and SHA-256
/// of the bytes, after the same vPDQ signal.
#[test]
fn dispatcher_video_digests_are_those_of_the_bytes() {
    use echotrace_signals::content::{ContentHasher, HashOptions, RobustRole};
    use echotrace_signals::digest::digests;
    use echotrace_signals::robust::RobustOptions;
    use echotrace_signals::signal::SignalType;
    use echotrace_signals::video::VideoSetup;

    let path = fixtures().join("videos/doorknob-hd-no-bar.mp4");
    let bytes = std::fs::read(&path).expect("read video");
    let opts = HashOptions {
        video: Some(VideoSetup {
            hasher: hasher(),
            options: VpdqOptions::default(),
        }),
        ..HashOptions::default()
    };
    let d = digests(&bytes);
    let mut h = ContentHasher::new();
    let plain = h
        .hash_deferred(&bytes, &opts, None)
        .unwrap_or_else(|e| panic!("plain: {e}"))
        .signals;
    let robust = h
        .hash_robust_deferred(
            &bytes,
            &opts,
            RobustRole::Query,
            &RobustOptions::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("robust: {e}"))
        .signals;
    for signals in [&plain, &robust] {
        let types: Vec<SignalType> = signals.iter().map(|s| s.signal_type).collect();
        assert_eq!(
            types,
            [SignalType::Vpdq, SignalType::Md5, SignalType::Sha256]
        );
        assert_eq!(signals[1].value, d.md5);
        assert_eq!(signals[2].value, d.sha256);
    }
    assert_eq!(plain[0].value, robust[0].value);
}
