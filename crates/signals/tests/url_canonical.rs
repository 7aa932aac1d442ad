//! URL canonicalisation: one table row per rule, plus idempotence.

use echotrace_signals::canonical_url::{canonicalize_url, UrlError};
use proptest::prelude::*;

fn canon(s: &str) -> String {
    canonicalize_url(s)
        .unwrap_or_else(|e| panic!("{s:?}: {e}"))
        .canonical
}

#[test]
fn each_rule() {
    let table: &[(&str, &str, &str)] = &[
        (
            "lowercase scheme and host",
            "HTTPS://News.EXAMPLE.com/Path",
            "https://news.example.com/Path",
        ),
        (
            "IDNA to punycode",
            "https://bücher.example/x",
            "https://xn--bcher-kva.example/x",
        ),
        (
            "default port dropped (https)",
            "https://example.com:443/a",
            "https://example.com/a",
        ),
        (
            "default port dropped (http)",
            "http://example.com:80/a",
            "https://example.com/a",
        ),
        (
            "non-default port kept",
            "https://example.com:8443/a",
            "https://example.com:8443/a",
        ),
        (
            "http folded to https",
            "http://example.com/a",
            "https://example.com/a",
        ),
        (
            "fragment dropped",
            "https://example.com/a#section-2",
            "https://example.com/a",
        ),
        (
            "utm_* dropped",
            "https://example.com/a?utm_source=x&UTM_Medium=y&id=3",
            "https://example.com/a?id=3",
        ),
        (
            "click ids dropped",
            "https://example.com/a?fbclid=1&gclid=2&mc_eid=3&igshid=4&p=1",
            "https://example.com/a?p=1",
        ),
        (
            "query sorted",
            "https://example.com/a?z=1&a=2&m=0",
            "https://example.com/a?a=2&m=0&z=1",
        ),
        (
            "empty query dropped",
            "https://example.com/a?utm_source=x",
            "https://example.com/a",
        ),
        (
            "empty params dropped",
            "https://example.com/a?&&b=1&",
            "https://example.com/a?b=1",
        ),
        (
            "unreserved escapes decoded",
            "https://example.com/%7Euser/%61bc",
            "https://example.com/~user/abc",
        ),
        (
            "reserved escapes uppercased",
            "https://example.com/a%2fb?q=%3d",
            "https://example.com/a%2Fb?q=%3D",
        ),
        (
            "trailing slash removed",
            "https://example.com/a/b/",
            "https://example.com/a/b",
        ),
        (
            "root slash kept",
            "https://example.com",
            "https://example.com/",
        ),
        (
            "dot segments resolved",
            "https://example.com/a/./b/../c",
            "https://example.com/a/c",
        ),
        (
            "user info dropped",
            "https://user:secret@example.com/a",
            "https://example.com/a",
        ),
        (
            "trailing host dot dropped",
            "https://example.com./a",
            "https://example.com/a",
        ),
        (
            "scheme-less input",
            "example.com/a?utm_campaign=z",
            "https://example.com/a",
        ),
        (
            "surrounding whitespace",
            "  https://example.com/a \n",
            "https://example.com/a",
        ),
        ("IPv4 normalised", "http://0x7f.1/", "https://127.0.0.1/"),
        (
            "non-ASCII path encoded",
            "https://example.com/ü",
            "https://example.com/%C3%BC",
        ),
    ];
    for (rule, input, want) in table {
        assert_eq!(canon(input), *want, "rule: {rule}");
    }
}

#[test]
fn digest_and_registrable_domain() {
    let c = canonicalize_url("https://news.example.co.uk/story?id=1").unwrap();
    assert_eq!(c.registrable_domain.as_deref(), Some("example.co.uk"));
    assert_eq!(c.host, "news.example.co.uk");
    assert_eq!(c.sha256.len(), 64);
    assert_eq!(
        c.sha256,
        canonicalize_url("HTTP://NEWS.example.co.uk/story/?id=1&utm_source=feed#top")
            .unwrap()
            .sha256
    );
    let ip = canonicalize_url("https://192.0.2.1/x").unwrap();
    assert_eq!(ip.registrable_domain, None);
    let blog = canonicalize_url("https://someone.blogspot.com/post").unwrap();
    assert_eq!(
        blog.registrable_domain.as_deref(),
        Some("someone.blogspot.com")
    );
}

#[test]
fn rejects() {
    assert_eq!(canonicalize_url("   "), Err(UrlError::Empty));
    assert!(matches!(
        canonicalize_url("javascript:alert(1)"),
        Err(UrlError::Scheme(_)) | Err(UrlError::Parse(_))
    ));
    assert!(matches!(
        canonicalize_url("ftp://example.com/x"),
        Err(UrlError::Scheme(_))
    ));
    assert!(canonicalize_url("https://").is_err());
    assert!(canonicalize_url(&format!("https://example.com/{}", "a".repeat(10_000))).is_err());
}

proptest! {
    #[test]
    fn canonicalisation_is_idempotent(
        host in "[a-zA-Z0-9]{1,8}(\\.[a-zA-Z]{2,5}){1,2}\\.?",
        port in proptest::option::of(prop_oneof![Just(80u16), Just(443), Just(8080)]),
        path in "(/[a-zA-Z0-9%._~!$&'()*+,;=:@ü-]{0,6}){0,4}/?",
        query in proptest::option::of("[a-zA-Z0-9_%=&+.~-]{0,30}"),
        frag in proptest::option::of("[a-z0-9]{0,5}"),
        scheme in prop_oneof![Just("http"), Just("https"), Just("HTTP")],
    ) {
        let mut s = format!("{scheme}://{host}");
        if let Some(p) = port { s.push_str(&format!(":{p}")); }
        s.push_str(&path);
        if let Some(q) = query { s.push('?'); s.push_str(&q); }
        if let Some(f) = frag { s.push('#'); s.push_str(&f); }
        if let Ok(once) = canonicalize_url(&s) {
            let twice = canonicalize_url(&once.canonical).expect("canonical form parses");
            prop_assert_eq!(&twice.canonical, &once.canonical);
            prop_assert_eq!(twice.sha256, once.sha256);
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
        if let Ok(once) = canonicalize_url(&s) {
            let twice = canonicalize_url(&once.canonical).expect("canonical form parses");
            prop_assert_eq!(twice.canonical, once.canonical);
        }
    }
}

/// Found by `canonicalisation_is_idempotent`: a `%` that does not start an
/// escape, followed by an escape whose decoded character completes a new
/// escape with it (`%` + `%33` → `%3` …).
#[test]
fn a_stray_percent_before_an_escape_is_idempotent() {
    for s in [
        "http://0.aa/?%%330",
        "http://0.aa/%%330",
        "http://0.aa/?a=%%34%31",
        "http://0.aa/?%3%330",
        "http://0.aa/?%",
    ] {
        let once = canonicalize_url(s).expect("parses");
        let twice = canonicalize_url(&once.canonical).expect("canonical form parses");
        assert_eq!(twice.canonical, once.canonical, "{s}");
    }
    let c = canonicalize_url("http://0.aa/?%%330").expect("parses");
    assert_eq!(c.canonical, "https://0.aa/?%2530");
}
