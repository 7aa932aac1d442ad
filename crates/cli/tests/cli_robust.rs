//! Robust matching through the CLI (issue 14): `echotrace match` finds
//! mirrored and padded re-uploads of a hash-only bank entry and says which
//! channel found each (crops need the original's windows, which a bank
//! export does not have) (`--no-dihedral` turns the
//! rotation/flip channel off); `echotrace compare --type vpdq` matches the
//! bar and no-bar versions of one clip and never two different clips, with
//! the reference decision kept on pairs that matched before.

use std::path::{Path, PathBuf};
use std::process::Command;

use echotrace_signals::decode::{decode_image, DecodeLimits, DecodeOptions};

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "../shared/fixtures is missing (looked for {}); the robust CLI tests need it",
        dir.display()
    );
    dir
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echotrace"))
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "echotrace-cli-robust-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d); // left by an earlier run with this pid
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// An RGB8 image.
struct Img {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

impl Img {
    fn px(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.w + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn map(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Img {
        let mut rgb = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        Img { w, h, rgb }
    }

    /// 24-bit BMP (bottom-up rows, padded to 4 bytes).
    fn bmp(&self) -> Vec<u8> {
        let row = (self.w * 3).div_ceil(4) * 4;
        let size = 54 + row * self.h;
        let mut out = Vec::with_capacity(size as usize);
        out.extend_from_slice(b"BM");
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&54u32.to_le_bytes());
        out.extend_from_slice(&40u32.to_le_bytes());
        out.extend_from_slice(&(self.w as i32).to_le_bytes());
        out.extend_from_slice(&(self.h as i32).to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&24u16.to_le_bytes());
        out.extend_from_slice(&[0; 24]);
        for y in (0..self.h).rev() {
            for x in 0..self.w {
                let [r, g, b] = self.px(x, y);
                out.extend_from_slice(&[b, g, r]);
            }
            out.resize(out.len() + (row - self.w * 3) as usize, 0);
        }
        out
    }
}

fn photo() -> Img {
    let bytes = std::fs::read(fixtures().join("pdq/images/bridge-mods/aaa-orig.jpg")).unwrap();
    let d = decode_image(&bytes, &DecodeLimits::default(), &DecodeOptions::default()).unwrap();
    // Every third pixel: a 1/3-scale copy keeps the test fast.
    let src = Img {
        w: d.width,
        h: d.height,
        rgb: d.rgb,
    };
    Img::map(src.w / 3, src.h / 3, |x, y| src.px(x * 3 + 1, y * 3 + 1))
}

fn write(dir: &Path, name: &str, img: &Img) -> String {
    let p = dir.join(name);
    std::fs::write(&p, img.bmp()).unwrap();
    p.to_string_lossy().into_owned()
}

fn plain_hash(path: &str) -> String {
    let out = bin().args(["hash", "--json", path]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["signals"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|x| x["type"] == "pdq" || x["signal_type"] == "pdq")
        })
        .and_then(|x| x["value"].as_str())
        .unwrap_or_else(|| panic!("no pdq in {line}"))
        .to_string()
}

/// `(file name, channel)` of each input's first match, `None` if none.
fn matches(args: &[&str]) -> Vec<(String, Option<String>)> {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = Path::new(v["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let ch = v["matches"][0]["channel"].as_str().map(str::to_string);
            (name, ch)
        })
        .collect()
}

#[test]
fn match_reports_the_channel_of_each_adapted_reupload() {
    let dir = tmp_dir("match");
    let p = photo();
    let orig = write(&dir, "orig.bmp", &p);
    let mirrored = write(
        &dir,
        "mirror.bmp",
        &Img::map(p.w, p.h, |x, y| p.px(p.w - 1 - x, y)),
    );
    let (bx, by) = (p.w / 6, p.h / 6);
    let padded = write(
        &dir,
        "pad.bmp",
        &Img::map(p.w + 2 * bx, p.h + 2 * by, |x, y| {
            if x < bx || y < by || x >= p.w + bx || y >= p.h + by {
                [250, 250, 250]
            } else {
                p.px(x - bx, y - by)
            }
        }),
    );
    let other = fixtures().join("pdq/images/labelme/q0746.jpg");
    let other = other.to_string_lossy().into_owned();
    // A hash-only bank, as exported by another instance.
    let bank = dir.join("bank.csv");
    std::fs::write(
        &bank,
        format!("signal_type,value,label\npdq,{},photo\n", plain_hash(&orig)),
    )
    .unwrap();
    let bank = bank.to_string_lossy().into_owned();

    let got = matches(&[
        "match", "--json", "--bank", &bank, &orig, &mirrored, &padded, &other,
    ]);
    let channel = |n: &str| {
        got.iter()
            .find(|(f, _)| f == n)
            .and_then(|(_, c)| c.clone())
    };
    assert_eq!(channel("orig.bmp").as_deref(), Some("plain"), "{got:?}");
    assert_eq!(
        channel("mirror.bmp").as_deref(),
        Some("dihedral"),
        "{got:?}"
    );
    assert_eq!(channel("pad.bmp").as_deref(), Some("border"), "{got:?}");
    assert_eq!(channel("q0746.jpg"), None, "{got:?}");

    // The dihedral channel is on by default and can be turned off.
    let got = matches(&[
        "match",
        "--json",
        "--no-dihedral",
        "--bank",
        &bank,
        &mirrored,
    ]);
    assert_eq!(got[0].1, None, "{got:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn compare_vpdq(a: &str, b: &str) -> serde_json::Value {
    let v = fixtures().join("vpdq/videos");
    let out = bin()
        .args(["compare", "--type", "vpdq"])
        .arg(v.join(a))
        .arg(v.join(b))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compare_vpdq_matches_bar_and_no_bar_versions_of_a_clip() {
    assert!(
        ffmpeg_available(),
        "the vPDQ compare tests need ffmpeg (apt-get install ffmpeg)"
    );
    // The same clip with and without bars: the border channel.
    let c = compare_vpdq("pattern-hd-no-bar.mp4", "pattern-sd-grey-bar.mp4");
    assert_eq!(c["match"], true, "{c}");
    assert_eq!(c["channel"], "border", "{c}");
    assert!(c["plain_query_match_pct"].as_f64().unwrap() < 80.0, "{c}");
    // A pair that matched before keeps its plain decision.
    let c = compare_vpdq("chair-22-sd-grey-bar.mp4", "chair-orig-22-sd-bar.mp4");
    assert_eq!(c["match"], true, "{c}");
    assert_eq!(c["channel"], "plain", "{c}");
    // Different clips never match, bars or not.
    let c = compare_vpdq("pattern-sd-grey-bar.mp4", "chair-22-sd-grey-bar.mp4");
    assert_eq!(c["match"], false, "{c}");
    let c = compare_vpdq("doorknob-hd-no-bar.mp4", "pattern-hd-no-bar.mp4");
    assert_eq!(c["match"], false, "{c}");
}

/// A 3 s cut of a fixture clip at 320×180 plus `filter`, written the way
/// ffmpeg (and many cameras) write MP4 by default: the index (`moov`) after
/// the media data, which cannot be decoded from a pipe.
fn moov_last_clip(name: &str, filter: &str, out: &Path) -> String {
    let src = fixtures().join("vpdq/videos").join(name);
    let vf = format!("scale=320:180,setsar=1{filter}");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&src)
        .args(["-t", "3", "-an", "-vf", &vf, "-c:v", "libx264"])
        .args(["-preset", "ultrafast"])
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not cut {name}");
    out.display().to_string()
}

#[test]
fn compare_vpdq_reads_moov_last_files_and_matches_a_grey_pillarbox() {
    assert!(
        ffmpeg_available(),
        "the vPDQ compare tests need ffmpeg (apt-get install ffmpeg)"
    );
    let dir = tmp_dir("moov-last");
    let plain = moov_last_clip("pattern-hd-no-bar.mp4", "", &dir.join("a.mp4"));
    let pillar = moov_last_clip(
        "pattern-hd-no-bar.mp4",
        ",pad=480:180:80:0:0x808080",
        &dir.join("c.mp4"),
    );
    let bytes = std::fs::read(&pillar).unwrap();
    assert!(
        echotrace_signals::video::ffmpeg::mp4_moov_after_mdat(&bytes),
        "the test clip must keep its index at the end"
    );
    // The temporary copies go to TMPDIR and are deleted after decoding.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = bin()
        .env("TMPDIR", &tmp)
        .args(["compare", "--type", "vpdq", &pillar, &plain])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["match"], true, "{c}");
    assert_eq!(c["channel"], "border", "{c}");
    // The grey bars are cut exactly: the content is x 80..400.
    assert_eq!(c["a_content_rect"]["x"], 80, "{c}");
    assert_eq!(c["a_content_rect"]["w"], 320, "{c}");
    let left = std::fs::read_dir(&tmp).unwrap().count();
    assert_eq!(left, 0, "temporary video copies left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
