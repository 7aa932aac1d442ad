//! `echotrace bank import` through the real binary: good lines imported,
//! bad lines reported with line numbers, exit code 1, dry run writes nothing.

use std::process::Command;

use echotrace_engine::{Engine, EngineConfig};
use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;

both_backends!(
    import_twice_adds_nothing_twice,
    concurrent_imports_add_each_signal_once
);

const A: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
const B: &str = "0000000000000000000000000000000000000000000000000000000000000001";

fn echotrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_echotrace"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_reports_bad_lines_and_imports_the_rest() {
    let dir = std::env::temp_dir().join(format!("echotrace-cli-bank-{}", std::process::id()));
    // Pids come round again (pid_max is 32768 here): a database left by an
    // earlier run that died would otherwise be imported into.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("bank.db").display());
    let csv = dir.join("hashes.csv");
    std::fs::write(
        &csv,
        format!(
            "pdq_hex,labels\n{A},group-a;still\n# comment\nnot-a-hash\n\
             md5\td41d8cd98f00b204e9800998ecf8427e\tx\nmd5,\n{B}\n"
        ),
    )
    .unwrap();
    let csv = csv.to_str().unwrap();

    // A missing bank without --create is a fatal error (exit 2).
    let out = echotrace(&["bank", "import", "--db", &db, "--bank", "dump", csv]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--create"));

    // Dry run: validation only.
    let out = echotrace(&[
        "bank",
        "import",
        "--db",
        &db,
        "--bank",
        "dump",
        "--dry-run",
        csv,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 valid items, 2 bad lines"));

    let out = echotrace(&[
        "bank", "import", "--db", &db, "--bank", "dump", "--create", "--label", "gifct", csv,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    assert!(stdout.contains("imported 3 items (3 signals)"), "{stdout}");
    assert!(stdout.contains("2 bad lines"), "{stdout}");
    assert!(
        stderr.contains(&format!("{csv}:4: invalid pdq value")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{csv}:6: missing value")),
        "{stderr}"
    );

    let engine = Engine::open(EngineConfig::with_database_url(&db))
        .await
        .unwrap();
    let stats = engine.index_stats().unwrap();
    assert_eq!((stats.content, stats.pdq, stats.exact), (3, 2, 1));
    let bank = engine.bank_by_name("dump").await.unwrap();
    let items = engine.list_content(bank.id, 0, 10).await.unwrap();
    assert_eq!(items[0].signals[0].value, A);
    assert_eq!(items[0].labels, vec!["gifct", "group-a", "still"]);
    engine.store().close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Running an import again adds nothing: every item whose signal the bank
/// already holds is skipped and counted ("already held"), and so is a line
/// repeating an earlier one. Another bank holding the same signals does
/// not count. (Before, a second run doubled the bank and reviewers saw
/// every match twice.)
async fn import_twice_adds_nothing_twice(db: &TestDb) {
    let dir = std::env::temp_dir().join(format!(
        "echotrace-cli-bank-twice-{}-{}",
        std::process::id(),
        db.url.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("hashes.csv");
    // Batches of two: A, B | an md5 twice (a repeat inside one batch) | A
    // again, in another spelling (upper case), in a later batch.
    std::fs::write(
        &csv,
        format!(
            "{A},first\n{B}\nmd5,d41d8cd98f00b204e9800998ecf8427e\n\
             md5,d41d8cd98f00b204e9800998ecf8427e\npdq,{},again\n",
            A.to_uppercase()
        ),
    )
    .unwrap();
    let csv = csv.to_str().unwrap();
    let import = |bank: &str| {
        let out = echotrace(&[
            "bank", "import", "--db", &db.url, "--bank", bank, "--create", "--batch", "2", csv,
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = import("dump");
    assert!(
        first.contains("imported 3 items (3 signals)") && first.contains("2 already held"),
        "{first}"
    );
    let second = import("dump");
    assert!(
        second.contains("imported 0 items (0 signals)") && second.contains("5 already held"),
        "{second}"
    );
    let other = import("other");
    assert!(
        other.contains("imported 3 items (3 signals)") && other.contains("2 already held"),
        "{other}"
    );

    let engine = Engine::open(EngineConfig::with_database_url(&db.url))
        .await
        .unwrap();
    let bank = engine.bank_by_name("dump").await.unwrap();
    let items = engine.list_content(bank.id, 0, 100).await.unwrap();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(
        items[0].labels,
        vec!["first"],
        "the first line's item stays"
    );
    engine.store().close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Several imports of one list into one bank at once hold each signal
/// once between them: every batch checks what the bank holds and writes
/// with no other import of that bank in between. (Before, on PostgreSQL,
/// imports running at once each saw nothing held and each added the list:
/// 4 × 3,000 lines gave up to 12,000 items.)
async fn concurrent_imports_add_each_signal_once(db: &TestDb) {
    const LINES: usize = 3_000;
    const IMPORTS: usize = 4;
    let dir = std::env::temp_dir().join(format!(
        "echotrace-cli-bank-concurrent-{}-{}",
        std::process::id(),
        db.url.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("hashes.csv");
    let list: String = (1..=LINES).map(|i| format!("md5,{i:032x}\n")).collect();
    std::fs::write(&csv, list).unwrap();
    let seed = dir.join("seed.csv");
    std::fs::write(&seed, format!("{A}\n")).unwrap();
    let csv = csv.to_str().unwrap();
    let import_args = |file: &str| -> Vec<String> {
        [
            "bank", "import", "--db", &db.url, "--bank", "dump", "--create",
        ]
        .into_iter()
        .chain(["--batch", "100", file])
        .map(String::from)
        .collect()
    };
    // The bank exists before the imports race.
    let out = echotrace(
        &import_args(seed.to_str().unwrap())
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{out:?}");

    let children: Vec<std::process::Child> = (0..IMPORTS)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_echotrace"))
                .args(import_args(csv))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut imported = 0;
    let mut held = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let count = |after: &str, before: &str| -> usize {
            let start = stdout.find(after).unwrap() + after.len();
            let rest = &stdout[start..];
            rest[..rest.find(before).unwrap()].trim().parse().unwrap()
        };
        imported += count("imported ", " items");
        held += count("s; ", " already held");
    }
    assert_eq!(
        (imported, held),
        (LINES, (IMPORTS - 1) * LINES),
        "each line imported once, held by the others"
    );

    let engine = Engine::open(EngineConfig::with_database_url(&db.url))
        .await
        .unwrap();
    let bank = engine.bank_by_name("dump").await.unwrap();
    let mut values = Vec::new();
    let mut after = 0;
    loop {
        let page = engine.list_content(bank.id, after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        values.extend(page.into_iter().flat_map(|c| c.signals).map(|s| s.value));
    }
    let distinct: std::collections::HashSet<&String> = values.iter().collect();
    assert_eq!(values.len(), LINES + 1, "every signal held once");
    assert_eq!(distinct.len(), LINES + 1);
    engine.store().close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
