//! `echotrace match` end to end: a bank built from the reference hashes of
//! the bridge photo matches its edited re-uploads, stdin hex lines are
//! matched like the library's brute force, digests match exactly, and a bad
//! bank is refused with a clear message and a non-zero exit.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixtures() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        dir.is_dir(),
        "../shared/fixtures is missing (looked for {}); the CLI match tests need the shared fixtures",
        dir.display()
    );
    dir
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echotrace"))
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("echotrace-cli-match-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d); // left by an earlier run with this pid
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn hamming_hex(a: &str, b: &str) -> u32 {
    a.as_bytes()
        .chunks(16)
        .zip(b.as_bytes().chunks(16))
        .map(|(x, y)| {
            let x = u64::from_str_radix(std::str::from_utf8(x).unwrap_or("0"), 16).unwrap_or(0);
            let y = u64::from_str_radix(std::str::from_utf8(y).unwrap_or("0"), 16).unwrap_or(0);
            (x ^ y).count_ones()
        })
        .sum()
}

#[test]
fn edited_images_match_the_original_in_the_bank() {
    let fx = fixtures();
    // Reference (python-pil-fullres) hash of the original bridge photo, plus
    // an unrelated hash from the haystack and a non-pdq row to be skipped.
    let expected = std::fs::read_to_string(fx.join("pdq/expected.csv")).expect("expected.csv");
    let orig = expected
        .lines()
        .find(|l| l.starts_with("images/bridge-mods/aaa-orig.jpg,python-pil-fullres,"))
        .and_then(|l| l.split(',').nth(2))
        .expect("orig hash")
        .to_string();
    let dir = tmp_dir("images");
    let bank = dir.join("bank.csv");
    std::fs::write(
        &bank,
        format!(
            "signal_type,value,label\npdq,{orig},\"bridge, original\"\npdq,{},unrelated\nurl,https://example.invalid/x,skipped\n",
            "0".repeat(64)
        ),
    )
    .expect("bank");
    let imgs = fx.join("pdq/images/bridge-mods");
    let inputs = [
        "aaa-orig.jpg",
        "blur-a-little.jpg",
        "high-contrast.jpg",
        "shrink-a-lot.jpg",
    ];
    let out = bin()
        .arg("match")
        .arg("--bank")
        .arg(&bank)
        .arg("--json")
        .args(inputs.iter().map(|f| imgs.join(f)))
        .output()
        .expect("run echotrace");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped 1 bank row(s) of type url"));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), inputs.len());
    for (line, f) in lines.iter().zip(inputs) {
        assert!(line["path"].as_str().unwrap_or("").ends_with(f));
        let m = line["matches"].as_array().expect("matches");
        assert_eq!(m.len(), 1, "{f}: {line}");
        assert_eq!(m[0]["signal_type"], "pdq");
        assert_eq!(m[0]["value"], orig.as_str());
        assert_eq!(m[0]["label"], "bridge, original");
        let d = m[0]["distance"].as_u64().expect("distance");
        assert!(d <= 31, "{f}: distance {d}");
    }
    // Radius 0 keeps only near-exact decodes; an unrelated radius check:
    let out = bin()
        .args(["match", "--radius", "0", "--json", "--bank"])
        .arg(&bank)
        .arg(imgs.join("shrink-a-lot.jpg"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    assert_eq!(
        lines[0]["matches"].as_array().map(Vec::len),
        Some(0),
        "{}",
        lines[0]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stdin_hex_lines_match_like_brute_force() {
    let fx = fixtures();
    let haystack =
        std::fs::read_to_string(fx.join("pdq/hashlists/haystack.txt")).expect("haystack");
    let needles = std::fs::read_to_string(fx.join("pdq/hashlists/needles.txt")).expect("needles");
    let hay: Vec<&str> = haystack
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let ned: Vec<&str> = needles
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let dir = tmp_dir("stdin");
    let bank = dir.join("bank.csv");
    let mut csv = String::from("signal_type,value\n");
    for h in &hay {
        csv.push_str(&format!("pdq,{h}\n"));
    }
    std::fs::write(&bank, csv).expect("bank");
    let mut child = bin()
        .args(["match", "--json", "--bank"])
        .arg(&bank)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for n in &ned {
            writeln!(stdin, "{n}").expect("write");
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), ned.len());
    let mut total = 0;
    for (line, n) in lines.iter().zip(&ned) {
        assert_eq!(line["path"], "-");
        assert_eq!(line["query"], *n);
        let mut got: Vec<(String, u64)> = line["matches"]
            .as_array()
            .expect("matches")
            .iter()
            .map(|m| {
                (
                    m["value"].as_str().unwrap_or("").to_string(),
                    m["distance"].as_u64().unwrap_or(999),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, u64)> = hay
            .iter()
            .map(|h| (h.to_ascii_lowercase(), u64::from(hamming_hex(h, n))))
            .filter(|(_, d)| *d <= 31)
            .collect();
        want.sort();
        assert_eq!(got, want, "needle {n}");
        total += want.len();
    }
    assert!(total > 0, "the reference lists have pairs within 31");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn digests_match_exactly() {
    let fx = fixtures();
    let img = fx.join("pdq/images/bridge-mods/blur-a-lot.jpg");
    // Hash with `echotrace hash` to get the digests it computes.
    let out = bin()
        .args(["hash", "--json"])
        .arg(&img)
        .output()
        .expect("hash");
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap_or(&[]))
            .expect("hash json");
    let find = |t: &str| {
        v["signals"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["type"] == t))
            .and_then(|s| s["value"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {t} in {v}"))
    };
    let (md5, sha) = (find("md5"), find("sha256"));
    let dir = tmp_dir("digests");
    let bank = dir.join("bank.csv");
    std::fs::write(
        &bank,
        format!(
            "signal_type,value,label\nmd5,{},m\nsha256,{sha},s\n",
            md5.to_uppercase()
        ),
    )
    .expect("bank");
    let out = bin()
        .args(["match", "--json", "--bank"])
        .arg(&bank)
        .arg(&img)
        .output()
        .expect("match");
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out.stdout);
    let m = lines[0]["matches"].as_array().expect("matches");
    let kinds: Vec<&str> = m.iter().filter_map(|x| x["signal_type"].as_str()).collect();
    assert_eq!(kinds, vec!["md5", "sha256"]);
    assert!(m.iter().all(|x| x["distance"] == 0));
    // And the plain-text mode names the match.
    let out = bin()
        .args(["match", "--bank"])
        .arg(&bank)
        .arg(&img)
        .output()
        .expect("match");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 match(es)") && text.contains(&sha),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_banks_are_refused_clearly() {
    let dir = tmp_dir("bad");
    let img = fixtures().join("pdq/images/bridge-mods/aaa-orig.jpg");
    let cases: [(&str, &str); 5] = [
        ("", "empty"),
        ("type,hash\npdq,00\n", "header"),
        ("signal_type,value\npdq,xyz\n", "line 2"),
        ("signal_type,value\nnot_a_type,abc\n", "line 2"),
        ("signal_type,value\nmd5,abc\n", "line 2"),
    ];
    for (i, (content, needle)) in cases.iter().enumerate() {
        let bank = dir.join(format!("bank{i}.csv"));
        std::fs::write(&bank, content).expect("bank");
        let out = bin()
            .args(["match", "--bank"])
            .arg(&bank)
            .arg(&img)
            .output()
            .expect("run");
        assert_ne!(out.status.code(), Some(0), "case {i} must fail");
        assert!(out.stdout.is_empty(), "nothing matched with a bad bank");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(needle),
            "case {i}: stderr {err:?} should mention {needle:?}"
        );
    }
    let out = bin()
        .args(["match", "--bank"])
        .arg(dir.join("missing.csv"))
        .arg(&img)
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open bank file"));
    // A missing input is reported, the others still run, exit 1.
    let bank = dir.join("ok.csv");
    std::fs::write(&bank, "signal_type,value\n").expect("bank");
    let out = bin()
        .args(["match", "--json", "--bank"])
        .arg(&bank)
        .arg(dir.join("nope.jpg"))
        .arg(&img)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["error"].is_string());
    assert_eq!(lines[1]["matches"].as_array().map(Vec::len), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}
