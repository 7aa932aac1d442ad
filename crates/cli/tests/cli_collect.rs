//! The collector through its interfaces (`echotrace collect …` and the
//! `/v1/sources`, `/v1/sightings` API), on SQLite and PostgreSQL, against
//! generated local sites on loopback (127.0.0.2+; the operator's
//! allow-private-addresses setting lets the collector reach them, while
//! 127.0.0.1 stays refused). Benign, generated content only.
//!
//! * a feed → pages → locker landing pages → files: every planted copy of a
//!   bank item is found (altered re-uploads within the PDQ and text
//!   thresholds included), with its parent chain, and nothing outside the
//!   scope is fetched; a bank item added later finds earlier sightings
//!   (retro-hunt); the sources API validates and audits;
//! * hostile sites: every hostile answer ends in a recorded per-item error
//!   within its caps, and the run goes on;
//! * Tor: a source's SOCKS5 proxy carries every request, names unresolved;
//!   an `.onion` URL without a proxy is refused.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::site::{Reply, Site};
use common::socks::Socks;
use common::{
    assert_peak_under, bridge_photo, fixtures, lookup_channels, noise_bytes, ok, ok_json_peak, pad,
    run, temp_dir, Server,
};
use echotrace_engine::demo::{
    altered_bytes, demo_images, demo_texts, demo_unrelated_image, png_bytes, Alteration,
};
use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_backends!(
    crawl_finds_planted_copies_in_scope,
    hostile_sites_end_in_recorded_errors,
    warc_import_records_payloads_and_names_bad_records,
    warc_import_of_large_records_stays_in_bounded_memory,
    crawled_images_match_through_the_robust_channels_at_every_url,
    add_source_names_the_wrong_field,
);

const CONTACT: &str = "https://collector-test.invalid/contact";
const T: Duration = Duration::from_secs(120);

fn pdq_of(bytes: &[u8]) -> String {
    echotrace_signals::content::hash_content(bytes, &Default::default())
        .expect("hash")
        .into_iter()
        .find(|s| s.signal_type == echotrace_signals::signal::SignalType::Pdq)
        .map(|s| s.value)
        .expect("pdq")
}

async fn sighting(server: &Server, id: i64) -> Value {
    let (s, v) = server.get(&format!("/v1/sightings/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn by_url<'a>(list: &'a [Value], suffix: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|s| s["url"].as_str().is_some_and(|u| u.ends_with(suffix)))
        .collect()
}

async fn crawl_finds_planted_copies_in_scope(db: &TestDb) {
    let images = demo_images();
    let texts = demo_texts();
    let (resized, _) = altered_bytes(&images[0].image, Alteration::Resized).unwrap();
    let (grey_jpeg, _) = altered_bytes(&images[0].image, Alteration::Greyscale).unwrap();
    let (rings_jpeg, _) = altered_bytes(&images[1].image, Alteration::Jpeg).unwrap();
    let unrelated = png_bytes(&demo_unrelated_image()).unwrap();
    let edited_text = texts[0].edited.to_string();
    let site = Site::start(&["127.0.0.2", "127.0.0.3", "127.0.0.4"], move |a| {
        let (seed, locker, far) = (a[0], a[1], a[2]);
        move |host: &str, path: &str| {
            let on_seed = host == seed.ip().to_string();
            let on_locker = host == locker.ip().to_string();
            match (on_seed, on_locker, path) {
                (true, _, "/feed.xml") => Some(Reply::bytes(
                    "application/rss+xml",
                    format!(
                        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Board</title>
                        <item><title>one</title><link>http://{seed}/p1.html</link></item>
                        <item><title>two</title><link>http://{seed}/p2.html</link></item>
                        <item><title>far</title><link>http://{far}/far.html</link></item>
                        </channel></rss>"#
                    )
                    .into_bytes(),
                )),
                (true, _, "/p1.html") => Some(Reply::html(&format!(
                    "<html><body><p>{edited_text}</p><img src=\"/img/sunset-small.png\">\
                     <a href=\"http://{locker}/f/abc\">pack</a> <a href=\"http://{far}/other.html\">x</a></body></html>"
                ))),
                (true, _, "/p2.html") => Some(Reply::html(&format!(
                    "<html><body><p>Nothing to see: a bakery opens on the high street next week.</p>\
                     <img src=\"/img/unrelated.png\"><img src=\"/img/rings.jpg\">\
                     <a href=\"http://{locker}/f/gone\">old pack</a></body></html>"
                ))),
                (true, _, "/img/sunset-small.png") => Some(Reply::bytes("image/png", resized.clone())),
                (true, _, "/img/unrelated.png") => Some(Reply::bytes("image/png", unrelated.clone())),
                (true, _, "/img/rings.jpg") => Some(Reply::bytes("image/jpeg", rings_jpeg.clone())),
                (_, true, "/f/abc") => Some(Reply::html(
                    "<html><head><title>abc.png · locker</title></head><body><h1>abc.png</h1>\
                     <a class=\"btn download-button\" href=\"/dl/abc.png\">Download</a></body></html>",
                )),
                (_, true, "/dl/abc.png") => Some(Reply::bytes("image/png", grey_jpeg.clone())),
                (_, true, "/f/gone") => Some(Reply::html(
                    "<html><body><h1>Sorry</h1><p>This file has been removed.</p></body></html>",
                )),
                _ => None,
            }
        }
    })
    .await;
    let (seed, locker, far) = (site.addrs[0], site.addrs[1], site.addrs[2]);
    let server = Server::spawn(&db.url, &[]).await;
    // The bank: the original image and the original text.
    let (s, _) = server
        .send(
            Method::POST,
            "/v1/banks",
            json!({"name": "known", "kind": "block"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, img_item) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"pdq": pdq_of(&png_bytes(&images[0].image).unwrap())}, "labels": ["demo"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{img_item}");
    let (s, text_item) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"text": texts[0].original}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{text_item}");

    // The source, through the API (bad configs are 400s naming the field).
    let (s, v) = server
        .send(
            Method::POST,
            "/v1/sources",
            json!({"name": "board", "kind": "feed", "config": {"urls": ["ftp://x"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("config.urls[0]"),
        "{v}"
    );
    let (s, v) = server
        .send(Method::POST, "/v1/sources", json!({"name": "board", "kind": "feed", "config": {"urls": [format!("http://{seed}/feed.xml")], "depth": 2, "locker_hosts": [locker.ip().to_string()], "typo": 1}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("typo"),
        "{v}"
    );
    let (s, v) = server
        .send(
            Method::POST,
            "/v1/sources",
            json!({"name": "board", "kind": "feed", "config": {"urls": [format!("http://{seed}/feed.xml")], "depth": 2, "locker_hosts": [locker.ip().to_string()]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = server
        .send(
            Method::POST,
            "/v1/sources",
            json!({"name": "board", "kind": "feed", "config": {"urls": ["http://a.test/"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Collect, through the CLI.
    let warc = temp_dir("warc");
    let out = ok(
        &[
            "collect",
            "run",
            "--db",
            &db.url,
            "--contact",
            CONTACT,
            "--allow-private-addresses",
            "127.0.0.2/31,127.0.0.4/32",
            "--no-politeness",
            "--warc-dir",
            warc.to_str().unwrap(),
            "--json",
        ],
        T,
    );
    let report: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["jobs_failed"], 0, "{report}");

    // Nothing outside the scope was fetched; everything carried the contact.
    let hits = site.hits();
    assert!(
        hits.iter()
            .all(|h| !h.host.starts_with(&far.ip().to_string())),
        "out of scope fetched: {hits:?}"
    );
    assert!(
        hits.iter().all(|h| h.user_agent.contains(CONTACT)),
        "{hits:?}"
    );
    let counts = site.counts();
    for p in [
        "/feed.xml",
        "/p1.html",
        "/p2.html",
        "/img/sunset-small.png",
        "/f/abc",
        "/dl/abc.png",
        "/f/gone",
    ] {
        assert_eq!(counts.get(p), Some(&1), "{p} fetched once: {counts:?}");
    }

    // Every planted copy was found and matched the right bank item.
    let img_id = img_item["id"].as_i64().unwrap();
    let text_id = text_item["id"].as_i64().unwrap();
    let matched = server.sightings("matched=true").await;
    let urls: Vec<&str> = matched.iter().filter_map(|s| s["url"].as_str()).collect();
    for (suffix, item) in [
        ("/img/sunset-small.png", img_id),
        ("/dl/abc.png", img_id),
        ("/p1.html", text_id),
    ] {
        let found = by_url(&matched, suffix);
        assert_eq!(found.len(), 1, "{suffix} not matched: {urls:?}");
        assert!(
            found[0]["matches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["content_id"] == item),
            "{}",
            found[0]
        );
    }
    assert_eq!(matched.len(), 3, "only the planted copies match: {urls:?}");
    let cluster = server.sightings(&format!("content_id={img_id}")).await;
    assert_eq!(cluster.len(), 2);

    // The parent chain of the locker file: landing page ← page ← feed.
    let file = by_url(&matched, "/dl/abc.png")[0];
    let d = sighting(&server, file["id"].as_i64().unwrap()).await;
    let chain: Vec<&str> = d["parents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["url"].as_str())
        .collect();
    assert_eq!(chain.len(), 3, "{chain:?}");
    assert!(
        chain[0].ends_with("/f/abc")
            && chain[1].ends_with("/p1.html")
            && chain[2].ends_with("/feed.xml"),
        "{chain:?}"
    );
    // Evidence: a WARC record, digests and headers only (retention off).
    let ev = &d["evidence"];
    assert!(ev["file"].as_str().unwrap().ends_with(".warc.gz"), "{d}");
    assert!(d["signals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["type"] == "pdq"));
    // Its `metadata` record (concurrent to the response) holds every signal
    // of the sighting and the match result.
    let meta = warc_metadata_of(
        &warc.join(ev["file"].as_str().unwrap()),
        ev["record_id"].as_str().unwrap(),
    );
    let e = &meta["echotrace"];
    assert_eq!(e["matched"], true, "{meta}");
    assert_eq!(e["source"], "board", "{meta}");
    assert_eq!(e["content_sha256"], d["content_sha256"], "{meta}");
    assert_eq!(e["suppressed_by_allow"], false, "{meta}");
    assert!(e["hash_error"].is_null(), "{meta}");
    assert!(
        e["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content_id"] == img_id && m["signal_type"] == "pdq"),
        "{meta}"
    );
    let stored: Vec<(String, String)> = d["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().into(),
                s["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    let recorded: Vec<(String, String)> = e["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["type"].as_str().unwrap().into(),
                s["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(recorded, stored, "{meta}");

    // The out-of-scope links are recorded as outlinks, not fetched.
    let all = server.sightings("").await;
    let far_links = by_url(&all, "/far.html");
    assert_eq!(far_links.len(), 1);
    assert_eq!(far_links[0]["content_sha256"], "");
    // The removed locker page is recorded as removed.
    let gone = by_url(&all, "/f/gone");
    let gone = sighting(&server, gone[0]["id"].as_i64().unwrap()).await;
    assert_eq!(gone["attributes"]["locker"]["state"], "removed", "{gone}");
    // Filters: by host, by platform, by time, by source.
    let on_locker = server.sightings(&format!("host={}", locker.ip())).await;
    assert!(
        on_locker.len() >= 3
            && on_locker
                .iter()
                .all(|s| s["host"] == locker.ip().to_string())
    );
    assert!(server.sightings("from=4102444800000").await.is_empty());
    assert_eq!(server.sightings("source=board").await.len(), all.len());
    let (s, v) = server.get("/v1/sightings?source=nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = server.get("/v1/sightings?matched=maybe").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Source status: items counted, no errors.
    let (s, v) = server.get("/v1/sources/board").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["items"].as_i64().unwrap() >= all.len() as i64 - 1, "{v}");
    assert_eq!(v["last_run_status"], "done");

    // Retro-hunt: a bank item added now finds the earlier sighting of the
    // rings JPEG (collected unmatched).
    let rings_pdq = pdq_of(&png_bytes(&images[1].image).unwrap());
    let (s, rings_item) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"pdq": rings_pdq}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let rid = rings_item["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = server.sightings(&format!("content_id={rid}")).await;
        if let Some(s) = c.first() {
            assert!(s["url"].as_str().unwrap().ends_with("/img/rings.jpg"));
            assert_eq!(s["matches"][0]["found_by"], "retro_hunt");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retro-hunt never matched"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // ... and queued it for review, tagged with its source.
    let (_, m) = server.get("/v1/matches?limit=100").await;
    assert!(
        m["matches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["content_id"] == rid),
        "{m}"
    );
    let _ = std::fs::remove_dir_all(warc);
}

async fn hostile_sites_end_in_recorded_errors(db: &TestDb) {
    let mut many = String::from("<html><body>");
    for i in 0..100_000 {
        many.push_str(&format!("<a href=\"/l/{i}\">{i}</a>"));
    }
    many.push_str("</body></html>");
    let site = Site::start(&["127.0.0.2"], move |a| {
        let me = a[0];
        move |_host: &str, path: &str| match path {
            "/endless" => Some(Reply::Endless),
            "/huge" => Some(Reply::HugeLength),
            "/bomb" => Some(Reply::GzipBomb { inflated: 64 << 20 }),
            "/loop" => Some(Reply::Redirect {
                status: 302,
                location: format!("http://{me}/loop2"),
            }),
            "/loop2" => Some(Reply::Redirect {
                status: 302,
                location: "/loop".into(),
            }),
            "/to-local" => Some(Reply::Redirect {
                status: 301,
                location: "http://127.0.0.1:9/secret".into(),
            }),
            "/slow" => Some(Reply::SlowDrip {
                every: Duration::from_millis(200),
            }),
            "/many" => Some(Reply::html(&many)),
            "/malformed.html" => Some(Reply::html(
                "<<<html><body><p>unclosed <a href='/ok.html'>ok<b><i></p></div></html",
            )),
            "/bad-feed.xml" => Some(Reply::bytes(
                "application/rss+xml",
                b"<rss><channel><item><title>x".to_vec(),
            )),
            "/ok.html" => Some(Reply::html("<p>a fine page after the hostile ones</p>")),
            _ => None,
        }
    })
    .await;
    let base = site.base(0);
    let list = temp_dir("hostile");
    let urls: Vec<String> = [
        "/endless",
        "/huge",
        "/bomb",
        "/loop",
        "/to-local",
        "/slow",
        "/many",
        "/malformed.html",
        "/ok.html",
    ]
    .iter()
    .map(|p| format!("{base}{p}"))
    .collect();
    std::fs::write(list.join("urls.txt"), urls.join("\n")).unwrap();
    let server = Server::spawn(&db.url, &[]).await;
    let (s, v) = server
        .send(Method::POST, "/v1/sources", json!({"name": "hostile", "kind": "urls", "config": {"path": list.join("urls.txt"), "max_links_per_page": 200, "depth": 0}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = server
        .send(Method::POST, "/v1/sources", json!({"name": "bad-feed", "kind": "feed", "config": {"urls": [format!("{base}/bad-feed.xml")]}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let started = std::time::Instant::now();
    let out = ok(
        &[
            "collect",
            "run",
            "--db",
            &db.url,
            "--contact",
            CONTACT,
            "--allow-private-addresses",
            "127.0.0.2/32",
            "--no-politeness",
            "--timeout-secs",
            "3",
            "--max-body-mib",
            "8",
            "--max-attempts",
            "1",
            "--warc-dir",
            list.join("warc").to_str().unwrap(),
            "--json",
        ],
        T,
    );
    let took = started.elapsed();
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(took < Duration::from_secs(60), "hostile run took {took:?}");
    let errors = &report["errors_by_kind"];
    assert_eq!(
        errors["too_large"], 3,
        "endless, 10 GB and gzip bomb: {report}"
    );
    assert_eq!(errors["redirect_loop"], 1, "{report}");
    assert_eq!(
        errors["forbidden_address"], 1,
        "redirect to 127.0.0.1: {report}"
    );
    assert_eq!(errors["timeout"], 1, "slow drip: {report}");
    assert_eq!(errors["too_many_links"], 1, "100k links: {report}");
    assert_eq!(errors["feed_parse"], 1, "malformed feed: {report}");
    // The run went on: the pages after the hostile ones were collected.
    let all = server.sightings("source=hostile").await;
    let okp = by_url(&all, "/ok.html");
    assert!(
        okp.iter().any(|s| s["content_sha256"] != ""),
        "ok page collected"
    );
    let mal = by_url(&all, "/malformed.html");
    assert!(
        mal.iter().any(|s| s["media_type"] == "html"),
        "malformed HTML read leniently"
    );
    // Each failure is recorded with its URL.
    for (p, kind) in [
        ("/endless", "too_large"),
        ("/huge", "too_large"),
        ("/bomb", "too_large"),
        ("/loop", "redirect_loop"),
        ("/to-local", "forbidden_address"),
        ("/slow", "timeout"),
    ] {
        let s = by_url(&all, p);
        assert_eq!(s.len(), 1, "{p}");
        let d = sighting(&server, s[0]["id"].as_i64().unwrap()).await;
        assert_eq!(d["attributes"]["fetch_error"], kind, "{p}: {d}");
    }
    let many = by_url(&all, "/many");
    let d = sighting(
        &server,
        many.iter().find(|s| s["media_type"] == "html").unwrap()["id"]
            .as_i64()
            .unwrap(),
    )
    .await;
    assert_eq!(
        d["attributes"]["links_dropped"],
        100_000 - 200,
        "{}",
        d["attributes"]
    );
    // The source shows the errors.
    let (_, v) = server.get("/v1/sources/hostile").await;
    assert_eq!(v["errors"], 7, "{v}");
    assert_eq!(v["failed"], 6, "{v}");
    let _ = std::fs::remove_dir_all(list);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tor_proxy_carries_every_request_and_onion_needs_it() {
    let db = TestDb::sqlite();
    let site = Site::start(&["127.0.0.2"], |_| {
        |host: &str, path: &str| match (host, path) {
            ("hiddenservicexyz.onion", "/index.html") => Some(Reply::html(
                "<p>hello from the onion</p><a href=\"/page2.html\">next</a><a href=\"http://mirror.test/x\">m</a>",
            )),
            ("hiddenservicexyz.onion", "/page2.html") => Some(Reply::html("<p>page two</p>")),
            _ => None,
        }
    })
    .await;
    let mut names = HashMap::new();
    names.insert("hiddenservicexyz.onion".to_string(), site.addrs[0]);
    let socks = Socks::start(names).await;
    let proxy = format!("socks5h://{}", socks.addr);
    // An onion URL without a proxy is refused, naming the field.
    let out = run(
        &[
            "collect",
            "add-source",
            "onion-direct",
            "--kind",
            "page",
            "--url",
            "http://hiddenservicexyz.onion/index.html",
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.urls[0]") && err.contains("onion") && err.contains("proxy"),
        "{err}"
    );
    // socks5:// (local DNS) is refused too.
    let out = run(
        &[
            "collect",
            "add-source",
            "leaky",
            "--kind",
            "page",
            "--url",
            "http://hiddenservicexyz.onion/",
            "--proxy",
            &format!("socks5://{}", socks.addr),
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("socks5h"));
    ok(
        &[
            "collect",
            "add-source",
            "onion",
            "--kind",
            "page",
            "--url",
            "http://hiddenservicexyz.onion/index.html",
            "--proxy",
            &proxy,
            "--depth",
            "1",
            "--db",
            &db.url,
        ],
        T,
    );
    // A page source without a proxy whose page links to an onion in scope.
    let plain = Site::start(&["127.0.0.3"], |_| {
        |_h: &str, path: &str| match path {
            "/links.html" => Some(Reply::html("<a href=\"http://elsewhere.onion/x\">o</a>")),
            _ => None,
        }
    })
    .await;
    ok(
        &[
            "collect",
            "add-source",
            "plain",
            "--kind",
            "page",
            "--url",
            &format!("{}/links.html", plain.base(0)),
            "--extra-host",
            "*.onion",
            "--db",
            &db.url,
        ],
        T,
    );
    let out = ok(
        &[
            "collect",
            "run",
            "--db",
            &db.url,
            "--contact",
            CONTACT,
            "--allow-private-addresses",
            "127.0.0.3/32",
            "--no-politeness",
            "--max-attempts",
            "1",
            "--warc-dir",
            temp_dir("tor").to_str().unwrap(),
            "--json",
        ],
        T,
    );
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        report["errors_by_kind"]["onion_without_proxy"], 1,
        "{report}"
    );
    // Every request of the onion source went through the proxy, by name
    // (ATYP 3; connections are reused, so one CONNECT may carry several
    // requests): robots.txt, index, page 2 — no local resolution. (The site
    // itself is not reachable directly: 127.0.0.2 is not allowed.)
    let connects = socks.connects();
    assert!(!connects.is_empty(), "{connects:?}");
    assert!(
        connects
            .iter()
            .all(|c| c.atyp == 3 && c.host == "hiddenservicexyz.onion"),
        "{connects:?}"
    );
    let paths: Vec<String> = site.hits().into_iter().map(|h| h.path).collect();
    assert!(
        paths.contains(&"/robots.txt".to_string()) && paths.contains(&"/page2.html".to_string()),
        "{paths:?}"
    );
    // The out-of-scope mirror link was recorded, not fetched.
    let listed = ok(&["collect", "list-sources", "--json", "--db", &db.url], T);
    let list: Value = serde_json::from_str(listed.trim()).unwrap();
    let onion = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "onion")
        .unwrap();
    assert_eq!(onion["done"], 2, "{onion}");
    assert_eq!(onion["errors"], 0, "{onion}");
    db.cleanup().await.unwrap();
}

/// One gzip member holding one WARC record.
/// The JSON of the `metadata` record concurrent to response `record_id`.
fn warc_metadata_of(path: &std::path::Path, record_id: &str) -> Value {
    use echotrace_collector::warc::{WarcReadLimits, WarcReader};
    let mut r = WarcReader::open(path, WarcReadLimits::default()).unwrap();
    while let Some(rec) = r.next_record() {
        let rec = rec.unwrap();
        if rec.record_type() == "metadata" && rec.header("WARC-Concurrent-To") == Some(record_id) {
            return serde_json::from_slice(rec.block.as_deref().unwrap()).unwrap();
        }
    }
    panic!("no metadata record for {record_id} in {}", path.display());
}

fn warc_record(kind: &str, uri: &str, date: &str, block: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut rec = format!(
        "WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{}>\r\nWARC-Target-URI: {uri}\r\nWARC-Date: {date}\r\nContent-Length: {}\r\n\r\n",
        uri.len(),
        block.len()
    )
    .into_bytes();
    rec.extend_from_slice(block);
    rec.extend_from_slice(b"\r\n\r\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&rec).unwrap();
    gz.finish().unwrap()
}

fn http(ct: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

async fn warc_import_records_payloads_and_names_bad_records(db: &TestDb) {
    let images = demo_images();
    let (jpeg, _) = altered_bytes(&images[2].image, Alteration::Jpeg).unwrap();
    let dir = temp_dir("warcimp");
    let mut file = Vec::new();
    file.extend(warc_record(
        "warcinfo",
        "",
        "2024-03-01T00:00:00Z",
        b"software: test\r\n",
    ));
    file.extend(warc_record(
        "response",
        "http://archive.test/page.html",
        "2024-03-01T10:00:00Z",
        &http("text/html", b"<p>an archived page about the harbour ferry timetable</p><a href=\"http://files.test/x.zip\">x</a>"),
    ));
    file.extend(warc_record(
        "request",
        "http://archive.test/page.html",
        "2024-03-01T10:00:00Z",
        b"GET /page.html HTTP/1.1\r\n\r\n",
    ));
    file.extend(warc_record(
        "response",
        "http://archive.test/img.jpg",
        "2024-03-01T10:00:01Z",
        &http("image/jpeg", &jpeg),
    ));
    file.extend(warc_record(
        "metadata",
        "http://archive.test/img.jpg",
        "2024-03-01T10:00:01Z",
        b"{}",
    ));
    file.extend(warc_record(
        "resource",
        "http://archive.test/notes.txt",
        "2024-03-01T10:00:02Z",
        b"plain notes kept as a resource record",
    ));
    let good = dir.join("crawl.warc.gz");
    std::fs::write(&good, &file).unwrap();
    let server = Server::spawn(&db.url, &[]).await;
    server
        .send(Method::POST, "/v1/banks", json!({"name": "known"}))
        .await;
    let (s, item) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"pdq": pdq_of(&png_bytes(&images[2].image).unwrap())}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let out = ok(
        &[
            "collect",
            "import-warc",
            good.to_str().unwrap(),
            "--db",
            &db.url,
            "--json",
        ],
        T,
    );
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r["records"], 6, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["outlinks"], 1, "{r}");
    assert_eq!(r["matched"], 1, "{r}");
    let hits = server
        .sightings(&format!("content_id={}", item["id"]))
        .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["url"], "http://archive.test/img.jpg");
    assert_eq!(
        hits[0]["first_seen_at"], 1_709_287_201_000i64,
        "dated by WARC-Date"
    );
    let ev = &hits[0]["evidence"];
    assert!(
        ev["file"].as_str().unwrap().ends_with("crawl.warc.gz")
            && ev["record_id"].as_str().unwrap().starts_with("<urn:uuid:"),
        "{ev}"
    );
    let (_, v) = server
        .get("/v1/sightings?url=http://files.test/x.zip")
        .await;
    assert_eq!(
        v["sightings"].as_array().unwrap().len(),
        1,
        "the outlink: {v}"
    );
    let (_, v) = server
        .get("/v1/sightings?url=http://archive.test/notes.txt")
        .await;
    assert_eq!(v["sightings"][0]["media_type"], "text");
    // A truncated WARC: the records before the cut are kept, then a clear
    // error naming the record and its byte offset (exit 2).
    let mut plain = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(&file[..]);
    std::io::Read::read_to_end(&mut d, &mut plain).unwrap();
    let cut = dir.join("cut.warc");
    std::fs::write(&cut, &plain[..plain.len() - 40]).unwrap();
    let out = run(
        &[
            "collect",
            "import-warc",
            cut.to_str().unwrap(),
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 6 at byte") && err.contains("cut.warc"),
        "{err}"
    );
    let not_warc = dir.join("x.warc");
    std::fs::write(&not_warc, b"hello, this is not a WARC file\r\n").unwrap();
    let out = run(
        &[
            "collect",
            "import-warc",
            not_warc.to_str().unwrap(),
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("record 1 at byte 0"));
    let _ = std::fs::remove_dir_all(dir);
}

/// `serve --demo` has a benign demo source: its generated site and Telegram
/// export yield sightings, re-uploads of demo bank items matched among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_shows_sightings() {
    let dir = temp_dir("demo");
    let server = Server::spawn_env(
        "",
        &["--demo"],
        &[("ECHOTRACE_DEMO_DIR", dir.to_str().unwrap())],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        // (The demo sources appear once the demo banks are seeded: 404 until then.)
        let (_, site) = server
            .get("/v1/sightings?source=demo-site&matched=true")
            .await;
        let (_, tg) = server
            .get("/v1/sightings?source=demo-telegram&matched=true")
            .await;
        let site = site["sightings"].as_array().cloned().unwrap_or_default();
        let tg = tg["sightings"].as_array().cloned().unwrap_or_default();
        // A page of the demo site is recorded once, by whichever source
        // reaches it first: the site's crawl or the export's links to it
        // (a race on a loaded machine). Count the site's matched pages
        // whichever source found them.
        let on_site = site
            .iter()
            .chain(tg.iter())
            .filter(|s| s["url"].as_str().is_some_and(|u| u.contains("/demo/site/")))
            .count();
        let in_channel = tg.iter().filter(|s| s["platform"] == "telegram").count();
        // The site's own crawl ran: its frontier jobs are done. (Its matched
        // sightings may all carry the export's source, when the export's
        // links reached every matched page first: CI saw that race.)
        let (_, site_source) = server.get("/v1/sources/demo-site").await;
        let site_crawled = site_source["done"].as_i64().unwrap_or(0) > 0;
        if site_crawled && on_site >= 2 && in_channel >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo sightings never appeared: site source {site_source} site {site:?} telegram {tg:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (s, v) = server.get("/v1/sources").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sources"].as_array().unwrap().len(), 2, "{v}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A WARC file of 40 resource records of 8 MiB (320 MiB, uncompressed):
/// every payload is recorded, and the import's peak memory stays far below
/// their total (batches are bounded by bytes as well as by count; bounded
/// by count alone, with four batches queued, all 40 were held at once).
async fn warc_import_of_large_records_stays_in_bounded_memory(db: &TestDb) {
    use std::io::Write;
    const RECORDS: usize = 40;
    const RECORD_BYTES: usize = 8 << 20;
    let dir = temp_dir("warc-large");
    let path = dir.join("large.warc");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut digests = Vec::with_capacity(RECORDS);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..RECORDS {
        let block = noise_bytes(&mut state, RECORD_BYTES);
        digests.push(echotrace_signals::digest::sha256_hex(&block));
        write!(
            file,
            "WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-{i:012}>\r\n\
             WARC-Target-URI: http://archive.test/blob/{i}.bin\r\nWARC-Date: 2024-03-01T10:00:00Z\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            block.len()
        )
        .unwrap();
        file.write_all(&block).unwrap();
        file.write_all(b"\r\n\r\n").unwrap();
    }
    file.flush().unwrap();
    drop(file);

    let (r, peak_kib) = ok_json_peak(
        &[
            "collect",
            "import-warc",
            path.to_str().unwrap(),
            "--db",
            &db.url,
            "--json",
        ],
        T,
    );
    assert_eq!(r["records"], RECORDS as u64, "{r}");
    assert_eq!(r["items"], RECORDS as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_peak_under("WARC import", RECORDS * RECORD_BYTES, peak_kib, 200);

    // Every payload's digest was recorded (through the API).
    let server = Server::spawn(&db.url, &[]).await;
    for (i, sha) in digests.iter().enumerate().step_by(13) {
        let url = format!("http://archive.test/blob/{i}.bin");
        assert!(
            server.has_sighting_of(&url, sha).await,
            "record {i} not recorded"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A crawl matches images the way `/v1/lookup` does: the mirror of a bank
/// image (added as a file) matches through `dihedral` on each page that
/// carries it — at a second URL too, where the collector has hashed the
/// same bytes before — a framed copy through the channel a lookup
/// reports, and an unrelated photo matches nothing.
async fn crawled_images_match_through_the_robust_channels_at_every_url(db: &TestDb) {
    let original = bridge_photo();
    let mirrored = png_bytes(&image::imageops::flip_horizontal(&original)).unwrap();
    let framed = png_bytes(&pad(&original, 60, 40, [20, 160, 90])).unwrap();
    let unrelated = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();
    let (m2, f2, u2) = (mirrored.clone(), framed.clone(), unrelated.clone());
    let site = Site::start(&["127.0.0.2"], move |_| {
        move |_host: &str, path: &str| match path {
            "/a.html" => Some(Reply::html(
                "<html><body><p>River walk, part one.</p><img src=\"/img/one.png\"></body></html>",
            )),
            "/b.html" => Some(Reply::html(
                "<html><body><p>River walk, part two.</p><img src=\"/img/two.png\">\
                 <img src=\"/img/framed.png\"><img src=\"/img/other.jpg\"></body></html>",
            )),
            "/img/one.png" | "/img/two.png" => Some(Reply::bytes("image/png", m2.clone())),
            "/img/framed.png" => Some(Reply::bytes("image/png", f2.clone())),
            "/img/other.jpg" => Some(Reply::bytes("image/jpeg", u2.clone())),
            _ => None,
        }
    })
    .await;
    let base = site.base(0);
    let server = Server::spawn(&db.url, &[]).await;
    let (s, v) = server
        .send(Method::POST, "/v1/banks", json!({"name": "files"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let item = server
        .upload("/v1/banks/files/content", &png_bytes(&original).unwrap())
        .await;
    let item_id = item["id"].as_i64().unwrap();
    let want_mirrored = lookup_channels(&server, &mirrored).await;
    assert_eq!(
        want_mirrored,
        [("files".to_string(), "dihedral".to_string())]
    );
    let want_framed = lookup_channels(&server, &framed).await;
    assert_eq!(want_framed.len(), 1, "{want_framed:?}");
    assert_eq!(lookup_channels(&server, &unrelated).await, []);

    // Two sources, collected one after the other, so the second page's
    // image is bytes the collector has already hashed under another URL.
    let list = temp_dir("robust-urls");
    let warc = temp_dir("robust-warc");
    for (name, page) in [("walk-a", "a.html"), ("walk-b", "b.html")] {
        let file = list.join(format!("{name}.txt"));
        std::fs::write(&file, format!("{base}/{page}\n")).unwrap();
        let (s, v) = server
            .send(
                Method::POST,
                "/v1/sources",
                json!({"name": name, "kind": "urls", "config": {"path": file, "depth": 1}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let out = ok(
            &[
                "collect",
                "run",
                "--db",
                &db.url,
                "--contact",
                CONTACT,
                "--allow-private-addresses",
                "127.0.0.2/32",
                "--no-politeness",
                "--warc-dir",
                warc.to_str().unwrap(),
                "--json",
            ],
            T,
        );
        let report: Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(report["jobs_failed"], 0, "{report}");
    }

    let all = server.sightings("").await;
    let channels = |suffix: &str| -> (bool, Vec<(String, String)>) {
        let s = by_url(&all, suffix);
        assert_eq!(s.len(), 1, "one sighting of {suffix}: {all:?}");
        let mut got: Vec<(String, String)> = s[0]["matches"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                assert_eq!(m["content_id"], item_id, "{m}");
                (
                    "files".to_string(),
                    m["channel"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        (s[0]["matched"] == true, got)
    };
    assert_eq!(channels("/img/one.png"), (true, want_mirrored.clone()));
    assert_eq!(
        channels("/img/two.png"),
        (true, want_mirrored),
        "the same bytes at a second URL match the same way"
    );
    assert_eq!(channels("/img/framed.png"), (true, want_framed));
    assert_eq!(channels("/img/other.jpg"), (false, vec![]));
    let _ = std::fs::remove_dir_all(list);
    let _ = std::fs::remove_dir_all(warc);
}

/// `collect add-source --config` with a field of the wrong type fails
/// (stderr, non-zero exit) naming the field, as `POST /v1/sources` does;
/// nothing is added. (Before: `config: invalid type: string "no",
/// expected a boolean at line 1 column 46`.)
async fn add_source_names_the_wrong_field(db: &TestDb) {
    for (config, reason) in [
        (
            r#"{"urls": ["https://example.com/"], "robust": "no"}"#,
            "config.robust: invalid type",
        ),
        (
            r#"{"urls": ["https://example.com/"], "depth": 300}"#,
            "config.depth: invalid value",
        ),
        (
            r#"{"urls": "https://example.com/"}"#,
            "config.urls: invalid type",
        ),
    ] {
        let out = run(
            &[
                "collect",
                "add-source",
                "board",
                "--kind",
                "urls",
                "--db",
                &db.url,
                "--config",
                config,
            ],
            T,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}: {stderr}");
        assert!(stderr.contains(reason), "{config}: {stderr}");
    }
    let listed = ok(&["collect", "list-sources", "--db", &db.url], T);
    assert!(!listed.contains("board"), "nothing added: {listed}");
}
