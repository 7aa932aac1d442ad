//! Frame stills for the review console: the still for a vPDQ timestamp is
//! the frame that was hashed at it, decoded from a pipe under the same
//! limits as hashing. Needs ffmpeg; fails when it is missing.

mod video_common;

use std::sync::Arc;
use std::time::Duration;

use video_common::{generate as ffmpeg_out, temp_dir};

use echotrace_signals::video::{
    extract_thumbnails, Ffmpeg, SeekableInput, ThumbnailOptions, VideoError, VideoHasher,
    VpdqOptions,
};

fn ffmpeg(seekable: SeekableInput) -> Ffmpeg {
    video_common::locate(Duration::from_secs(30), seekable, true)
}

/// Frame `n` of `video`, scaled to `w`×`h`, as RGB, straight from ffmpeg.
fn reference_frame(video: &[u8], n: u64, w: u32, h: u32) -> Vec<u8> {
    let dir = temp_dir();
    let src = dir.join(format!("ref-src-{n}.bin"));
    std::fs::write(&src, video).expect("write");
    let src_s = src.to_string_lossy().into_owned();
    let vf = format!("select=eq(n\\,{n}),scale={w}:{h}:flags=area");
    let rgb = ffmpeg_out(
        &format!("ref-{n}.rgb"),
        &[
            "-i",
            &src_s,
            "-vf",
            &vf,
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    rgb
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}

fn decode_jpeg(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .expect("a decodable JPEG")
        .to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

#[test]
fn stills_are_the_hashed_frames() {
    // 640x360 at 25 fps for 6 s: testsrc2 changes every frame.
    let mp4 = ffmpeg_out(
        "clip.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
            "-t",
            "6",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ],
    );
    let ff = ffmpeg(SeekableInput::Refuse);
    // Timestamps as vPDQ records them (1 s sampling): 0, 1, ..., 5 s.
    let hashed = VideoHasher::new(ff.clone())
        .hash(&mp4, &VpdqOptions::default())
        .expect("hashes");
    let stamps: Vec<f64> = hashed.vpdq.features.iter().map(|f| f.timestamp).collect();
    assert_eq!(stamps.len(), 6);
    let wanted = [stamps[1], stamps[4], stamps[4], 9999.0];
    let video: Arc<[u8]> = Arc::from(mp4.as_slice());
    let stills =
        extract_thumbnails(&ff, video, &wanted, &ThumbnailOptions::default()).expect("stills");
    // The duplicate collapses; the timestamp past the end has no still.
    let got: Vec<(f64, u64)> = stills
        .iter()
        .map(|t| (t.timestamp, t.frame_number))
        .collect();
    assert_eq!(got, [(1.0, 25), (4.0, 100)]);
    for t in &stills {
        assert_eq!((t.width, t.height), (160, 90));
        assert!(t.jpeg.starts_with(&[0xff, 0xd8, 0xff]), "JPEG magic");
        assert!(t.jpeg.len() < 20_000, "small: {} bytes", t.jpeg.len());
        let (w, h, rgb) = decode_jpeg(&t.jpeg);
        assert_eq!((w, h), (160, 90));
        let same = mean_abs_diff(&rgb, &reference_frame(&mp4, t.frame_number, 160, 90));
        let other = mean_abs_diff(&rgb, &reference_frame(&mp4, t.frame_number + 12, 160, 90));
        assert!(same < 6.0, "frame {}: mean diff {same}", t.frame_number);
        assert!(
            other > same * 2.0,
            "frame {}: {same} vs {other}",
            t.frame_number
        );
    }
    // Nothing asked, nothing decoded.
    let none = extract_thumbnails(
        &ff,
        Arc::from(mp4.as_slice()),
        &[],
        &ThumbnailOptions::default(),
    )
    .expect("empty");
    assert!(none.is_empty());
}

#[test]
fn moov_last_follows_the_decoder_policy() {
    // Small MP4 with moov last: decodes from the pipe (ffmpeg's buffer).
    let small = ffmpeg_out(
        "small-moov-last.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "3",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    assert!(echotrace_signals::video::ffmpeg::mp4_moov_after_mdat(
        &small
    ));
    let ff = ffmpeg(SeekableInput::Refuse);
    let stills = extract_thumbnails(
        &ff,
        Arc::from(small.as_slice()),
        &[2.0],
        &ThumbnailOptions::default(),
    )
    .expect("small moov-last MP4 decodes from the pipe");
    assert_eq!(stills.len(), 1);
    assert_eq!((stills[0].width, stills[0].height), (160, 120));
    // Large MP4 with moov last: the same refusal as hashing, no temp file.
    let big = video_common::big_moov_last_mp4();
    let e = extract_thumbnails(
        &ff,
        Arc::from(big.as_slice()),
        &[3.0],
        &ThumbnailOptions::default(),
    )
    .expect_err("needs a seekable input");
    assert!(matches!(e, VideoError::NeedsSeekableInput), "{e:?}");
    // With the operator's temp-file mode it works and leaves nothing behind.
    let dir = temp_dir().join("seekable");
    std::fs::create_dir_all(&dir).expect("dir");
    let ff = ffmpeg(SeekableInput::TempFile(dir.clone()));
    let stills = extract_thumbnails(
        &ff,
        Arc::from(big.as_slice()),
        &[3.0],
        &ThumbnailOptions::default(),
    )
    .expect("temp-file mode");
    assert_eq!(stills.len(), 1);
    assert_eq!(std::fs::read_dir(&dir).expect("read").count(), 0);
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let ff = ffmpeg(SeekableInput::Refuse);
    let opts = ThumbnailOptions::default();
    let e = extract_thumbnails(&ff, Arc::from(&b"not a video at all"[..]), &[0.0], &opts)
        .expect_err("garbage");
    assert!(matches!(e, VideoError::Unreadable(_)), "{e:?}");
    let mp4 = ffmpeg_out(
        "cut.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=10",
            "-t",
            "4",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ],
    );
    let cut = mp4.get(..mp4.len() / 2).expect("half");
    let e = extract_thumbnails(&ff, Arc::from(cut), &[3.5], &opts).expect_err("truncated");
    assert!(
        matches!(e, VideoError::DecodeFailed { .. } | VideoError::NoFrames),
        "{e:?}"
    );
    // Too many distinct frames in one call.
    let many: Vec<f64> = (0..100).map(|i| f64::from(i) * 0.1).collect();
    let e = extract_thumbnails(&ff, Arc::from(mp4.as_slice()), &many, &opts).expect_err("too many");
    assert!(matches!(e, VideoError::InvalidOption(_)), "{e:?}");
    let bad = ThumbnailOptions {
        jpeg_quality: 0,
        ..opts
    };
    assert!(extract_thumbnails(&ff, Arc::from(mp4.as_slice()), &[0.0], &bad).is_err());
}
