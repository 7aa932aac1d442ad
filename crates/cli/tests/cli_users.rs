//! `echotrace users` through the real binary: a console user's role is one
//! a console page accepts (admin, curator, reviewer); the API-key roles
//! (matcher, partner) are refused with the allowed ones listed, and nothing
//! is written. On SQLite and on PostgreSQL at `$ECHOTRACE_TEST_PG_URL`
//! (FAILS if unset, unless `ECHOTRACE_SKIP_PG=1`).

mod common;

use std::time::Duration;

use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;

both_backends!(console_users_get_console_roles_only);

async fn console_users_get_console_roles_only(db: &TestDb) {
    for role in ["matcher", "partner", "MATCHER"] {
        let out = common::users_create(&db.url, role, "mallory", "a long enough password");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--role {role}: {stderr}");
        assert!(
            stderr.contains("is for API keys only")
                && stderr.contains("must be one of admin, curator, reviewer"),
            "--role {role}: {stderr}"
        );
    }
    let out = common::users_create(&db.url, "robot", "mallory", "a long enough password");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown role \"robot\"") && stderr.contains("admin, curator, reviewer"),
        "{stderr}"
    );
    let list = common::ok(&["users", "list", "--db", &db.url], Duration::from_secs(60));
    assert!(list.trim().is_empty(), "nothing was created: {list}");

    for (role, name) in [("reviewer", "rita"), ("curator", "cole"), ("admin", "ada")] {
        let out = common::users_create(&db.url, role, name, "a long enough password");
        assert!(
            out.status.success(),
            "--role {role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = common::ok(&["users", "list", "--db", &db.url], Duration::from_secs(60));
    let roles: Vec<&str> = list.lines().filter_map(|l| l.split('\t').nth(2)).collect();
    assert_eq!(roles.len(), 3, "{list}");
    for role in ["reviewer", "curator", "admin"] {
        assert!(roles.contains(&role), "{list}");
    }
}
