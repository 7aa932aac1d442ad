//! `echotrace hash` and `echotrace compare --type pdq`, run as a process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use echotrace_signals::digest::{md5_hex, sha256_hex};

const BIN: &str = env!("CARGO_BIN_EXE_echotrace");
/// Pillow's hash of `bridge-mods/aaa-orig.jpg` (expected.csv); ours is equal.
const AAA_PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

fn fixtures() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ));
    assert!(
        p.is_dir(),
        "test fixtures missing: ../shared/fixtures (expected at {}) is missing",
        p.display()
    );
    p
}

fn image(rel: &str) -> PathBuf {
    fixtures().join("pdq/images").join(rel)
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    if let Some(mut w) = child.stdin.take() {
        if let Some(data) = stdin {
            let _ = w.write_all(data);
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("echotrace-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

#[test]
fn json_shape_is_exact() {
    let p = image("bridge-mods/aaa-orig.jpg");
    let ps = p.to_string_lossy().into_owned();
    let o = run(&["hash", "--json", &ps], None);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let bytes = read(&p);
    let want = format!(
        "{{\"path\":{},\"signals\":[{{\"type\":\"pdq\",\"value\":\"{AAA_PDQ}\",\"quality\":100}},{{\"type\":\"md5\",\"value\":\"{}\"}},{{\"type\":\"sha256\",\"value\":\"{}\"}}]}}\n",
        serde_json::to_string(&ps).unwrap_or_default(),
        md5_hex(&bytes),
        sha256_hex(&bytes)
    );
    assert_eq!(stdout(&o), want);
}

#[test]
fn dihedral_adds_eight_named_variants_in_order() {
    let p = image("misc/wee.jpg");
    let o = run(
        &["hash", "--json", "--dihedral", &p.to_string_lossy()],
        None,
    );
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let line = stdout(&o);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_default();
    let pdq = &v["signals"][0];
    assert_eq!(pdq["type"], "pdq");
    let dih = pdq["dihedral"].as_object().cloned().unwrap_or_default();
    let names: Vec<_> = dih.keys().cloned().collect();
    // serde_json's map is sorted; check the raw text for order instead.
    assert_eq!(names.len(), 8);
    let order = [
        "orig",
        "rot90",
        "rot180",
        "rot270",
        "flipx",
        "flipy",
        "flipplus1",
        "flipminus1",
    ];
    let mut at = 0;
    for n in order {
        let needle = format!("\"{n}\":\"");
        let i = line[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("{n} missing or out of order"));
        at += i + needle.len();
        assert_eq!(dih[n].as_str().map(str::len), Some(64), "{n}");
    }
    assert_eq!(dih["orig"], pdq["value"]);
    assert!(
        line.contains("\"quality\":100,\"dihedral\":{\"orig\""),
        "{line}"
    );
}

#[test]
fn text_output_is_one_tab_separated_line() {
    let p = image("bridge-mods/aaa-orig.jpg");
    let ps = p.to_string_lossy().into_owned();
    let o = run(&["hash", &ps], None);
    assert!(o.status.success());
    let bytes = read(&p);
    assert_eq!(
        stdout(&o),
        format!(
            "{ps}\tpdq:{AAA_PDQ}:100\tmd5:{}\tsha256:{}\n",
            md5_hex(&bytes),
            sha256_hex(&bytes)
        )
    );
}

#[test]
fn stdin_dash() {
    let bytes = read(&image("bridge-mods/aaa-orig.jpg"));
    let o = run(&["hash", "--json", "-"], Some(&bytes));
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("{\"path\":\"-\",\"signals\":[{\"type\":\"pdq\""),
        "{out}"
    );
    assert!(out.contains(AAA_PDQ));
    // Stdin is bounded by --max-file-bytes.
    let o = run(&["hash", "--max-file-bytes", "1000", "-"], Some(&bytes));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("-: "), "{}", stderr(&o));
}

#[test]
fn failures_reported_per_input_others_complete_in_order() {
    let dir = scratch("errors");
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"definitely not an image \x00\x01\x02").unwrap_or_default();
    // Text that is not UTF-8 (Latin-1): the reason names every kind read,
    // not only images (it said "not a supported image format").
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait, a Latin-1 line\n").unwrap_or_default();
    let trunc = dir.join("trunc.jpg");
    let full = read(&image("misc/wee.jpg"));
    std::fs::write(&trunc, &full[..full.len() / 2]).unwrap_or_default();
    let missing = dir.join("missing.png");
    let good = [
        image("bridge-mods/aaa-orig.jpg"),
        image("misc/c.png"),
        image("labelme/q0003.jpg"),
        image("modes/F.webp"),
    ];
    let args: Vec<String> = [
        "hash".to_string(),
        "--json".into(),
        "--threads".into(),
        "4".into(),
    ]
    .into_iter()
    .chain([
        good[0].to_string_lossy().into_owned(),
        junk.to_string_lossy().into_owned(),
        good[1].to_string_lossy().into_owned(),
        missing.to_string_lossy().into_owned(),
        latin1.to_string_lossy().into_owned(),
        good[2].to_string_lossy().into_owned(),
        trunc.to_string_lossy().into_owned(),
        good[3].to_string_lossy().into_owned(),
    ])
    .collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&argv, None);
    assert_eq!(o.status.code(), Some(1), "some inputs failed: exit 1");
    let lines: Vec<_> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 4);
    for (line, g) in lines.iter().zip(&good) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        assert_eq!(
            v["path"],
            g.to_string_lossy().as_ref(),
            "output order = input order"
        );
    }
    let err = stderr(&o);
    for (p, why) in [
        (
            &junk,
            "neither a supported image, video, PDF nor UTF-8 text",
        ),
        (
            &latin1,
            "neither a supported image, video, PDF nor UTF-8 text",
        ),
        (&missing, "No such file"),
        (&trunc, "truncated"),
    ] {
        let prefix = format!("{}: ", p.display());
        let line = err.lines().find(|l| l.starts_with(&prefix));
        let line = line.unwrap_or_else(|| panic!("no `path: reason` for {}: {err}", p.display()));
        assert!(line.contains(why), "{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn recursive_walks_sorted_and_survives_symlink_loops() {
    let dir = scratch("walk");
    let sub = dir.join("b-sub");
    std::fs::create_dir_all(&sub).unwrap_or_default();
    std::fs::copy(image("misc/wee.jpg"), dir.join("a.jpg")).unwrap_or_default();
    std::fs::copy(image("misc/c.png"), sub.join("c.png")).unwrap_or_default();
    #[cfg(unix)]
    {
        let _ = std::os::unix::fs::symlink(&dir, sub.join("loop"));
    }
    let d = dir.to_string_lossy().into_owned();
    let o = run(&["hash", "--recursive", "--json", &d], None);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let paths: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            v["path"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(
        paths,
        [dir.join("a.jpg"), sub.join("c.png")]
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    );
    // Without --recursive a directory is an error for that input only.
    let o = run(&["hash", &d], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn limits_flags_apply() {
    let p = image("bridge-mods/aaa-orig.jpg");
    let o = run(
        &["hash", "--max-pixels", "1000", &p.to_string_lossy()],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pixel limit"), "{}", stderr(&o));
}

#[test]
fn compare_pdq_hex_and_files() {
    let a = image("bridge-mods/aaa-orig.jpg");
    let b = image("bridge-mods/blur-a-lot.jpg");
    let (a, b) = (
        a.to_string_lossy().into_owned(),
        b.to_string_lossy().into_owned(),
    );
    // hex vs hex: flip 3 bits.
    let mut flipped = AAA_PDQ.as_bytes().to_vec();
    for i in [0usize, 10, 63] {
        flipped[i] = match flipped[i] {
            b'0' => b'1',
            _ => b'0',
        };
    }
    let flipped = String::from_utf8(flipped).unwrap_or_default();
    let want_d = (0..64)
        .map(|i| {
            let x = u8::from_str_radix(&AAA_PDQ[i..=i], 16).unwrap_or(0);
            let y = u8::from_str_radix(&flipped[i..=i], 16).unwrap_or(0);
            (x ^ y).count_ones()
        })
        .sum::<u32>();
    let o = run(&["compare", "--type", "pdq", AAA_PDQ, &flipped], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{{\"distance\":{want_d},\"match\":true}}\n")
    );
    let o = run(
        &[
            "compare",
            "--type",
            "pdq",
            AAA_PDQ,
            &flipped,
            "--threshold",
            "1",
        ],
        None,
    );
    assert_eq!(
        stdout(&o),
        format!("{{\"distance\":{want_d},\"match\":false}}\n")
    );
    // file vs hex: our decode reproduces Pillow's hash.
    let o = run(&["compare", "--type", "pdq", &a, AAA_PDQ], None);
    assert_eq!(stdout(&o), "{\"distance\":0,\"match\":true}\n");
    // file vs file: a heavy blur is still a match.
    let o = run(&["compare", "--type", "pdq", &a, &b], None);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap_or_default();
    assert_eq!(v["match"], true, "{}", stdout(&o));
    assert!(v["distance"].as_u64().is_some_and(|d| d <= 31));
    // Complement: distance 256, no match.
    let comp: String = AAA_PDQ
        .chars()
        .map(|c| {
            let v = c.to_digit(16).unwrap_or(0);
            std::char::from_digit(15 - v, 16).unwrap_or('0')
        })
        .collect();
    let o = run(&["compare", AAA_PDQ, &comp], None);
    assert_eq!(stdout(&o), "{\"distance\":256,\"match\":false}\n");
}

/// A text with no words has no `text_minhash` (it would be similar to
/// nothing), only its digests, like a PDF without text.
#[test]
fn wordless_text_has_digests_only() {
    let dir = scratch("wordless");
    // (An empty file is refused as "empty input", as before.)
    for (name, body) in [("blank.txt", " \n\t\n"), ("punct.txt", "?! -- ...")] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap_or_default();
        let o = run(&["hash", "--json", &path.to_string_lossy()], None);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap_or_default();
        let types: Vec<&str> = v["signals"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s["type"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(types, ["md5", "sha256"], "{name}: {}", stdout(&o));
    }
    let words = dir.join("words.txt");
    std::fs::write(&words, "the river valley fog clears by noon").unwrap_or_default();
    let o = run(&["hash", "--json", &words.to_string_lossy()], None);
    assert!(stdout(&o).contains("\"text_minhash\""), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_errors_exit_non_zero() {
    for bad in ["zz", "f8f8", "/nonexistent/file.jpg"] {
        let o = run(&["compare", "--type", "pdq", bad, AAA_PDQ], None);
        assert!(!o.status.success(), "{bad} accepted");
        assert!(stdout(&o).is_empty());
        assert!(stderr(&o).contains(bad), "{bad}: {}", stderr(&o));
    }
    // A non-image file.
    let dir = scratch("cmp");
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, [0u8, 1, 2, 3, 255]).unwrap_or_default();
    let o = run(&["compare", &junk.to_string_lossy(), AAA_PDQ], None);
    assert!(!o.status.success());
    // A text with no words (empty, blank, punctuation only) has nothing to
    // compare: refused naming the operand, not answered "no match".
    let words = dir.join("words.txt");
    std::fs::write(&words, "the river valley fog clears by noon").unwrap_or_default();
    let words = words.to_string_lossy().to_string();
    for (name, body) in [
        ("empty.txt", ""),
        ("blank.txt", " \n\t\n"),
        ("punct.txt", "?! -- ..."),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap_or_default();
        let path = path.to_string_lossy().to_string();
        for args in [
            [path.as_str(), words.as_str()],
            [words.as_str(), path.as_str()],
        ] {
            let o = run(&["compare", "--type", "text", args[0], args[1]], None);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
            assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
            assert!(
                stderr(&o).contains(&format!("{path}: text has no words")),
                "{args:?}: {}",
                stderr(&o)
            );
        }
    }
    // Wordless on stdin too.
    let o = run(
        &["compare", "--type", "text", "-", &words],
        Some(b"  ...  "),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("-: text has no words"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &["compare", "--type", "text", "--json", &words, &words],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"match\":true"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
