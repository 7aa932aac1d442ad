//! `echotrace collect import-telegram` on a generated Telegram Desktop
//! export (both text shapes, entities, text_link, inline URL buttons,
//! missing-media placeholders, forwarded messages, a 20,000-message
//! channel), on SQLite and PostgreSQL: every message, outlink and media
//! hash is recorded, an altered re-upload of a bank item is matched, and a
//! truncated or malformed `result.json` is a clear error naming the
//! position; an export given as its `result.json` is the source of its
//! folder, not one "result.json" source for every export. A mirrored or
//! bordered photo of a bank image matches through the same robust channel
//! as a `/v1/lookup` of it (`dihedral`, `border`), under each bank's
//! `matching` switches. Generated benign content and ../shared/fixtures
//! only.

mod common;

use std::time::Duration;

use common::{
    assert_peak_under, bridge_photo, fixtures, lookup_channels, noise_bytes, ok, ok_json_peak, pad,
    run, temp_dir, Server,
};
use echotrace_engine::demo::{altered_bytes, demo_images, demo_texts, png_bytes, Alteration};
use echotrace_store::both_backends;
use echotrace_store::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

both_backends!(export_of_20k_messages_is_ingested);
both_backends!(export_with_large_media_is_imported_in_bounded_memory);
both_backends!(result_json_is_named_after_its_export);
both_backends!(photos_match_through_the_robust_channels_as_a_lookup);
both_backends!(retro_hunt_finds_a_cropped_copy_through_bank_windows);

const T: Duration = Duration::from_secs(300);
const MESSAGES: usize = 20_000;

/// What the generator planted.
struct Planted {
    dir: std::path::PathBuf,
    outlinks: usize,
    photos: usize,
    missing: usize,
    forwarded: usize,
}

fn generate(dir: &std::path::Path) -> Planted {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    let images = demo_images();
    let texts = demo_texts();
    let mut messages = Vec::with_capacity(MESSAGES);
    let (mut outlinks, mut photos, mut missing, mut forwarded) = (0, 0, 0, 0);
    for i in 1..=MESSAGES {
        let mut m = json!({
            "id": i, "type": "message", "date": "2024-05-01T10:00:00",
            "date_unixtime": (1_714_557_600 + i as i64).to_string(),
            "from": "Generated Channel", "from_id": "channel4242",
        });
        let words =
            format!("bulletin {i} about the regional cycling league and its weekend fixtures");
        if i % 4 == 0 {
            // The array shape, with a link and a text_link.
            let a = format!("https://mirror{}.example/f/{i}", i % 7);
            let b = format!("files.example/d/{i}");
            m["text"] = json!([words.clone(), " see ", {"type": "text_link", "text": "here", "href": a}, " or ", {"type": "link", "text": b}]);
            m["text_entities"] = json!([{"type": "plain", "text": words}, {"type": "plain", "text": " see "}, {"type": "text_link", "text": "here", "href": a}, {"type": "plain", "text": " or "}, {"type": "link", "text": b}]);
            outlinks += 2;
        } else {
            m["text"] = json!(words);
            m["text_entities"] = json!([{"type": "plain", "text": words}]);
        }
        if i % 25 == 0 {
            m["inline_bot_buttons"] = json!([[{"type": "url", "text": "Open", "data": format!("https://buttons.example/b/{i}")}, {"type": "callback", "text": "x", "dataBase64": "AA", "data": ""}]]);
            outlinks += 1;
        }
        if i % 10 == 0 {
            m["forwarded_from"] = json!(format!("Source {}", i % 3));
            forwarded += 1;
        }
        if i % 100 == 0 {
            m["file"] = json!("(File not included. Change data exporting settings to download.)");
            m["media_type"] = json!("video_file");
            missing += 1;
        }
        if i % 400 == 0 {
            let name = format!("photos/photo_{i}@01-05-2024_10-00-00.png");
            let img =
                echotrace_engine::demo::png_bytes(&image::RgbImage::from_fn(48, 48, |x, y| {
                    image::Rgb([
                        (x * 5 + i as u32) as u8,
                        (y * 5) as u8,
                        ((x ^ y) * 3 + i as u32 / 400) as u8,
                    ])
                }))
                .unwrap();
            std::fs::write(dir.join(&name), img).unwrap();
            m["photo"] = json!(name);
            photos += 1;
        }
        messages.push(m);
    }
    // A re-upload of a bank image (resized) and of a bank text (edited).
    let (resized, _) = altered_bytes(&images[4].image, Alteration::Resized).unwrap();
    std::fs::write(dir.join("photos/planted.png"), resized).unwrap();
    messages[10]["photo"] = json!("photos/planted.png");
    photos += 1;
    // Message 13 (no links of its own) carries the edited bank text.
    messages[12]["text"] = json!(texts[1].edited);
    messages[12]["text_entities"] = json!([{"type": "plain", "text": texts[1].edited}]);
    let export = json!({"name": "Generated Channel", "type": "public_channel", "id": 4242, "messages": messages});
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_vec_pretty(&export).unwrap(),
    )
    .unwrap();
    Planted {
        dir: dir.to_path_buf(),
        outlinks,
        photos,
        missing,
        forwarded,
    }
}

fn pdq_of(bytes: &[u8]) -> String {
    echotrace_signals::content::hash_content(bytes, &Default::default())
        .unwrap()
        .into_iter()
        .find(|s| s.signal_type == echotrace_signals::signal::SignalType::Pdq)
        .unwrap()
        .value
}

/// A sighting detail's signals as (type, value), in order.
fn signal_list(detail: &Value) -> Vec<(&str, &str)> {
    detail["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["type"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect()
}

async fn export_of_20k_messages_is_ingested(db: &TestDb) {
    let dir = temp_dir("tg");
    let p = generate(&dir.join("ChatExport_2024-05-01"));
    let server = Server::spawn(&db.url, &[]).await;
    let images = demo_images();
    let texts = demo_texts();
    server
        .send(Method::POST, "/v1/banks", json!({"name": "known"}))
        .await;
    let (s, img) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"pdq": pdq_of(&png_bytes(&images[4].image).unwrap())}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, txt) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"text": texts[1].original}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let started = std::time::Instant::now();
    let out = ok(
        &[
            "collect",
            "import-telegram",
            p.dir.to_str().unwrap(),
            "--source",
            "channel",
            "--db",
            &db.url,
            "--json",
        ],
        T,
    );
    let took = started.elapsed();
    let r: Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("telegram import: {MESSAGES} messages in {took:?}");
    assert_eq!(r["messages"], MESSAGES as u64, "{r}");
    assert_eq!(r["outlinks"], p.outlinks as u64, "{r}");
    assert_eq!(r["media_hashed"], p.photos as u64, "{r}");
    assert_eq!(r["media_missing"], p.missing as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["items"], (MESSAGES + p.outlinks + p.photos) as u64, "{r}");
    assert_eq!(
        r["matched"], 2,
        "the cropped photo and the edited text: {r}"
    );

    // Through the API: the planted re-uploads matched their bank items.
    let img_id = img["id"].as_i64().unwrap();
    let hits = server.sightings(&format!("content_id={img_id}")).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["url"], "https://t.me/c/4242/11");
    assert_eq!(hits[0]["media_type"], "image");
    assert_eq!(hits[0]["platform"], "telegram");
    let d = server
        .get(&format!("/v1/sightings/{}", hits[0]["id"]))
        .await
        .1;
    assert_eq!(
        d["parents"][0]["url"], "https://t.me/c/4242/11",
        "the photo hangs off its message: {d}"
    );
    let t = server.sightings(&format!("content_id={}", txt["id"])).await;
    assert_eq!(t[0]["url"], "https://t.me/c/4242/13");
    // A message: dated by date_unixtime, forwarded_from recorded, its
    // outlinks (text_link, link, URL button) parented to it.
    let (s, v) = server
        .get("/v1/sightings?url=https://t.me/c/4242/100")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let msg = &v["sightings"][0];
    assert_eq!(msg["first_seen_at"], (1_714_557_600i64 + 100) * 1000);
    let d = server.get(&format!("/v1/sightings/{}", msg["id"])).await.1;
    assert_eq!(
        d["attributes"]["telegram"]["forwarded_from"], "Source 1",
        "{d}"
    );
    assert_eq!(
        d["attributes"]["telegram"]["missing_media"][0],
        "(File not included. Change data exporting settings to download.)"
    );
    for link in [
        "https://mirror2.example/f/100",
        "http://files.example/d/100",
        "https://buttons.example/b/100",
    ] {
        let (s, v) = server.get(&format!("/v1/sightings?url={link}")).await;
        assert_eq!(s, StatusCode::OK);
        let o = &v["sightings"][0];
        assert_eq!(o["parent_id"], msg["id"], "{link}: {v}");
        assert_eq!(o["content_sha256"], "");
        // A bare outlink's signals are its URL's, rebuilt from its columns.
        let od = server.get(&format!("/v1/sightings/{}", o["id"])).await.1;
        let canon = echotrace_signals::canonical_url::canonicalize_url(link).unwrap();
        assert_eq!(
            signal_list(&od),
            [
                ("url", canon.canonical.as_str()),
                ("url_sha256", canon.sha256.as_str())
            ],
            "{od}"
        );
    }
    // The message's signals, in the order they were hashed: text MinHash and
    // MD5 (stored rows), then SHA-256, URL and URL SHA-256 (rebuilt from the
    // sighting's content_sha256, url_canonical and url_sha256).
    let canon =
        echotrace_signals::canonical_url::canonicalize_url("https://t.me/c/4242/100").unwrap();
    let list = signal_list(&d);
    let types: Vec<&str> = list.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        types,
        ["text_minhash", "md5", "sha256", "url", "url_sha256"],
        "{d}"
    );
    assert_eq!(Some(list[2].1), msg["content_sha256"].as_str(), "{d}");
    assert_eq!(
        (list[3].1, list[4].1),
        (canon.canonical.as_str(), canon.sha256.as_str())
    );

    // Retro-hunt on those rebuilt signals: bank items added now by the
    // message's SHA-256 and by an outlink's URL find the sightings imported
    // before them.
    let (s, by_sha) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"sha256": msg["content_sha256"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{by_sha}");
    let (s, by_url) = server
        .send(
            Method::POST,
            "/v1/banks/known/content",
            json!({"signals": {"url": "https://buttons.example/b/100"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{by_url}");
    for (item, want, signal) in [
        (&by_sha, "https://t.me/c/4242/100", "sha256"),
        (&by_url, "https://buttons.example/b/100", "url"),
    ] {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = server
                .sightings(&format!("content_id={}", item["id"]))
                .await;
            if let Some(hit) = c.first() {
                assert_eq!(c.len(), 1, "{signal}: {c:?}");
                assert_eq!(hit["url"], want, "{hit}");
                assert_eq!(hit["matches"][0]["found_by"], "retro_hunt", "{hit}");
                assert_eq!(hit["matches"][0]["signal_type"], signal, "{hit}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "retro-hunt never matched by {signal}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // Every photo's hash is recorded.
    let (_, v) = server
        .get("/v1/sightings?url=https://t.me/c/4242/400")
        .await;
    let photo = v["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["media_type"] == "image")
        .expect("photo sighting");
    let bytes = std::fs::read(p.dir.join("photos/photo_400@01-05-2024_10-00-00.png")).unwrap();
    assert_eq!(
        photo["content_sha256"],
        echotrace_signals::digest::sha256_hex(&bytes)
    );
    let _ = p.forwarded;

    // Importing again only moves last_seen_at.
    let again = ok(
        &[
            "collect",
            "import-telegram",
            p.dir.to_str().unwrap(),
            "--source",
            "channel",
            "--db",
            &db.url,
            "--json",
        ],
        T,
    );
    let r2: Value = serde_json::from_str(again.trim()).unwrap();
    assert_eq!(r2["new_sightings"], 0, "{r2}");

    // Truncated and malformed exports: clear errors naming the position.
    let text = std::fs::read_to_string(p.dir.join("result.json")).unwrap();
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("result.json"), &text[..text.len() / 2]).unwrap();
    let out = run(
        &[
            "collect",
            "import-telegram",
            bad.to_str().unwrap(),
            "--source",
            "bad",
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("result.json")
            && err.contains("line ")
            && err.contains("column ")
            && err.contains("after message id"),
        "{err}"
    );
    std::fs::write(
        bad.join("result.json"),
        text.replacen("\"id\": 5,", "\"id\": \"five\",", 1),
    )
    .unwrap();
    let out = run(
        &[
            "collect",
            "import-telegram",
            bad.to_str().unwrap(),
            "--source",
            "bad",
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line ") && err.contains("column ") && err.contains("after message id 4"),
        "{err}"
    );
    let out = run(
        &[
            "collect",
            "import-telegram",
            dir.join("nope").to_str().unwrap(),
            "--db",
            &db.url,
        ],
        T,
    );
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}

/// An export whose messages carry large files: 40 files of 8 MiB (320 MiB)
/// are all hashed, and the import's peak memory stays far below their
/// total (batches are bounded by bytes as well as by count; bounded by
/// count alone, all 40 were held at once).
async fn export_with_large_media_is_imported_in_bounded_memory(db: &TestDb) {
    const FILES: usize = 40;
    const FILE_BYTES: usize = 8 << 20;
    let dir = temp_dir("tg-large-media");
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut messages = Vec::with_capacity(FILES);
    let mut digests = Vec::with_capacity(FILES);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 1..=FILES {
        let bytes = noise_bytes(&mut state, FILE_BYTES);
        let name = format!("files/archive_{i}.bin");
        std::fs::write(dir.join(&name), &bytes).unwrap();
        digests.push(echotrace_signals::digest::sha256_hex(&bytes));
        messages.push(json!({
            "id": i, "type": "message", "date_unixtime": (1_714_557_600 + i as i64).to_string(),
            "text": format!("weekly archive {i} of the cycling club"),
            "file": name, "mime_type": "application/octet-stream",
        }));
    }
    let export = json!({"name": "Archive Channel", "type": "public_channel", "id": 77, "messages": messages});
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_vec(&export).unwrap(),
    )
    .unwrap();

    let (r, peak_kib) = ok_json_peak(
        &[
            "collect",
            "import-telegram",
            dir.to_str().unwrap(),
            "--source",
            "archives",
            "--db",
            &db.url,
            "--json",
        ],
        T,
    );
    assert_eq!(r["messages"], FILES as u64, "{r}");
    assert_eq!(r["media_hashed"], FILES as u64, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_peak_under("Telegram import", FILES * FILE_BYTES, peak_kib, 200);

    // Every file's digest was recorded (through the API).
    let server = Server::spawn(&db.url, &[]).await;
    for (i, sha) in digests.iter().enumerate().step_by(13) {
        let url = format!("https://t.me/c/77/{}", i + 1);
        assert!(
            server.has_sighting_of(&url, sha).await,
            "file {} not recorded",
            i + 1
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `collect import-telegram` takes an export's folder or its `result.json`
/// (its --help says so). Every export's file has that name, so the file's
/// own name made every such import one source, "telegram:result.json",
/// across channels; the source is now named after the export's folder
/// either way, and re-importing by the other path finds nothing new.
async fn result_json_is_named_after_its_export(db: &TestDb) {
    let root = temp_dir("tg-names");
    let mut folders = Vec::new();
    for (n, channel) in [(1, "Channel One"), (2, "Channel Two")] {
        let dir = root.join(format!("ChatExport_2024-06-0{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let messages: Vec<Value> = (1..=3)
            .map(|i| {
                json!({"id": i, "type": "message",
                       "date_unixtime": (1_717_200_000 + i).to_string(),
                       "text": format!("{channel}: notice {i} about the cycling club")})
            })
            .collect();
        let export = json!({"name": channel, "type": "public_channel", "id": 500 + n,
                            "messages": messages});
        std::fs::write(dir.join("result.json"), export.to_string()).unwrap();
        folders.push(dir);
    }
    let import = |path: &std::path::Path| -> Value {
        let out = ok(
            &[
                "collect",
                "import-telegram",
                path.to_str().unwrap(),
                "--db",
                &db.url,
                "--json",
            ],
            T,
        );
        serde_json::from_str(out.trim()).expect("one JSON report")
    };
    for dir in &folders {
        let r = import(&dir.join("result.json"));
        assert_eq!(r["new_sightings"], 3, "{r}");
    }
    let r = import(&folders[0]);
    assert_eq!(r["new_sightings"], 0, "the same export by its folder: {r}");
    let out = ok(&["collect", "list-sources", "--db", &db.url], T);
    for n in [1, 2] {
        assert!(
            out.contains(&format!("telegram:ChatExport_2024-06-0{n} ")),
            "{out}"
        );
    }
    assert!(!out.contains("telegram:result.json"), "{out}");
    let _ = std::fs::remove_dir_all(root);
}

/// The collector matches the way `/v1/lookup` does: an export whose photos
/// are the left-right mirror of a bank image (added as a file) and the
/// same image in a uniform frame records them matched through `dihedral`
/// and `border`, the channel a lookup of the same bytes reports; a bank
/// with `"matching": {"dihedral": false}` does not match the mirror; an
/// unrelated photo stays unmatched.
/// A Telegram export in `dir` of chat `id`: one message per photo, each
/// (path under `dir`, bytes) written beside `result.json`.
fn write_photo_export(dir: &std::path::Path, name: &str, id: i64, photos: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    let messages: Vec<Value> = photos
        .iter()
        .enumerate()
        .map(|(i, (file, bytes))| {
            std::fs::write(dir.join(file), bytes).unwrap();
            json!({"id": i + 1, "type": "message",
                   "date_unixtime": (1_719_792_000 + i).to_string(),
                   "text": format!("picture {} of the river walk", i + 1),
                   "photo": file})
        })
        .collect();
    let export = json!({"name": name, "type": "public_channel", "id": id, "messages": messages});
    std::fs::write(dir.join("result.json"), export.to_string()).unwrap();
}

/// `collect import-telegram DIR --source SOURCE --db DB --json EXTRA…`:
/// its JSON report.
fn import_json(dir: &std::path::Path, source: &str, db: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "collect",
        "import-telegram",
        dir.to_str().unwrap(),
        "--source",
        source,
        "--db",
        db,
        "--json",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(ok(&args, T).trim()).unwrap()
}

/// The sighting of `bytes` at message `message` of chat `chat`, through
/// `/v1/sightings?url=`.
async fn photo_sighting(server: &Server, chat: i64, message: usize, bytes: &[u8]) -> Value {
    let sha = echotrace_signals::digest::sha256_hex(bytes);
    let (s, v) = server
        .get(&format!(
            "/v1/sightings?url=https://t.me/c/{chat}/{message}"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["content_sha256"] == sha)
        .unwrap_or_else(|| panic!("no sighting of photo {message} of chat {chat}: {v}"))
        .clone()
}

async fn photos_match_through_the_robust_channels_as_a_lookup(db: &TestDb) {
    let original = bridge_photo();
    let mirrored = png_bytes(&image::imageops::flip_horizontal(&original)).unwrap();
    let bordered = png_bytes(&pad(&original, 60, 40, [20, 160, 90])).unwrap();
    let unrelated = std::fs::read(fixtures().join("pdq/images/labelme/q0746.jpg")).unwrap();

    let server = Server::spawn(&db.url, &[]).await;
    let (s, v) = server
        .send(Method::POST, "/v1/banks", json!({"name": "files"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = server
        .send(
            Method::POST,
            "/v1/banks",
            json!({"name": "hashes", "matching": {"dihedral": false}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["matching"]["dihedral"], false, "{v}");
    let file_item = server
        .upload("/v1/banks/files/content", &png_bytes(&original).unwrap())
        .await;
    let pdq = file_item["signals"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, hash_item) = server
        .send(
            Method::POST,
            "/v1/banks/hashes/content",
            json!({"signals": {"pdq": pdq}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hash_item}");
    let (file_id, hash_id) = (
        file_item["id"].as_i64().unwrap(),
        hash_item["id"].as_i64().unwrap(),
    );

    // What a lookup of each photo matches (the reference).
    let want_mirrored = lookup_channels(&server, &mirrored).await;
    assert_eq!(
        want_mirrored,
        [("files".to_string(), "dihedral".to_string())],
        "the mirror: dihedral, and only where the bank allows it"
    );
    let want_bordered = lookup_channels(&server, &bordered).await;
    assert!(
        want_bordered.contains(&("hashes".to_string(), "border".to_string())),
        "{want_bordered:?}"
    );
    assert_eq!(lookup_channels(&server, &unrelated).await, []);

    // The export: one photo per message.
    let dir = temp_dir("tg-robust").join("ChatExport_2024-07-01");
    let photos: [(&str, &[u8]); 3] = [
        ("photos/mirrored.png", &mirrored),
        ("photos/bordered.png", &bordered),
        ("photos/unrelated.jpg", &unrelated),
    ];
    write_photo_export(&dir, "Robust Channel", 777, &photos);
    let r = import_json(&dir, "robust", &db.url, &[]);
    assert_eq!(r["media_hashed"], 3, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["matched"], 2, "the mirror and the framed copy: {r}");

    // Through the API: each photo's sighting, its matches' (bank, channel).
    let bank_names = [(file_id, "files"), (hash_id, "hashes")];
    let mut seen = Vec::new();
    for (i, (_, bytes)) in photos.iter().enumerate() {
        let photo = photo_sighting(&server, 777, i + 1, bytes).await;
        let mut got: Vec<(String, String)> = photo["matches"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|m| {
                let bank = bank_names
                    .iter()
                    .find(|(id, _)| m["content_id"] == *id)
                    .map_or("?", |(_, n)| n);
                assert_eq!(m["found_by"], "fetch", "{m}");
                (bank.to_string(), m["channel"].as_str().unwrap().to_string())
            })
            .collect();
        got.sort();
        seen.push((photo["matched"].clone(), got));
    }
    assert_eq!(seen[0], (json!(true), want_mirrored), "the mirror");
    assert_eq!(seen[1], (json!(true), want_bordered), "the framed copy");
    assert_eq!(seen[2], (json!(false), vec![]), "the unrelated photo");
    // The dihedral-off bank's item has no sighting of the mirror.
    let of_hashes = server.sightings(&format!("content_id={hash_id}")).await;
    assert!(
        of_hashes.iter().all(|x| x["url"] != "https://t.me/c/777/1"),
        "{of_hashes:?}"
    );
    let of_files = server.sightings(&format!("content_id={file_id}")).await;
    assert!(
        of_files.iter().any(|x| x["url"] == "https://t.me/c/777/1"),
        "{of_files:?}"
    );

    // `--no-robust` on the existing source: refused, nothing imported.
    let dir_s = dir.to_str().unwrap();
    let out = run(
        &[
            "collect",
            "import-telegram",
            dir_s,
            "--source",
            "robust",
            "--no-robust",
            "--db",
            &db.url,
        ],
        T,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("--no-robust") && err.contains("new sources"),
        "{err}"
    );

    // A plain-only source: the same export as another chat, plus the
    // original itself. Only the exact copy matches, through `plain`.
    let plain_dir = temp_dir("tg-plain").join("ChatExport_2024-07-02");
    let original_png = png_bytes(&original).unwrap();
    let mut plain_photos = photos.to_vec();
    plain_photos.push(("photos/original.png", &original_png));
    write_photo_export(&plain_dir, "Plain Channel", 778, &plain_photos);
    let r = import_json(&plain_dir, "plain", &db.url, &["--no-robust"]);
    assert_eq!(r["media_hashed"], 4, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["matched"], 1, "only the exact copy: {r}");
    let (s, v) = server.get("/v1/sources/plain").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["config"]["robust"], false, "{v}");
    let photo = photo_sighting(&server, 778, 4, &original_png).await;
    let channels: Vec<&str> = photo["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["channel"].as_str().unwrap())
        .collect();
    assert!(
        !channels.is_empty() && channels.iter().all(|c| *c == "plain"),
        "{photo}"
    );
    for i in 1..=3 {
        let (_, v) = server
            .get(&format!("/v1/sightings?url=https://t.me/c/778/{i}"))
            .await;
        assert!(
            v["sightings"]
                .as_array()
                .unwrap()
                .iter()
                .all(|x| x["matched"] == false),
            "photo {i} of the plain source: {v}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(plain_dir);
}

/// The retro-hunt meets a new item's bank-side windows with the stored
/// plain hashes of earlier sightings (docs/ROBUST.md, "Retro-hunting"): a
/// generated picture collected cropped by 8 % a side before its original
/// was added to a bank as a file is matched, `found_by` `retro_hunt`,
/// channel `window`, as a lookup of the crop is; an unrelated picture
/// collected the same way is not; and a bank with `"matching": {"window":
/// false}` holding the same original does not find the crop.
async fn retro_hunt_finds_a_cropped_copy_through_bank_windows(db: &TestDb) {
    let original = demo_images().swap_remove(4).image;
    let (cropped, _) = altered_bytes(&original, Alteration::Cropped).unwrap();
    let (unrelated, _) = altered_bytes(
        &echotrace_engine::demo::demo_unrelated_image(),
        Alteration::Cropped,
    )
    .unwrap();

    let server = Server::spawn(&db.url, &[]).await;
    for bank in [
        json!({"name": "no-windows", "matching": {"window": false}}),
        json!({"name": "files"}),
    ] {
        let (s, v) = server.send(Method::POST, "/v1/banks", bank).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Collected first, while no bank holds the original: nothing matches.
    let dir = temp_dir("tg-retro").join("ChatExport_2024-07-03");
    let photos: [(&str, &[u8]); 2] = [
        ("photos/cropped.png", &cropped),
        ("photos/unrelated.png", &unrelated),
    ];
    write_photo_export(&dir, "Retro Channel", 779, &photos);
    let r = import_json(&dir, "retro", &db.url, &[]);
    assert_eq!(r["media_hashed"], 2, "{r}");
    assert_eq!(r["matched"], 0, "{r}");

    // The original, added as a file: to the window-less bank first, so the
    // retro-hunt has passed over it by the time the other item is found.
    let original_png = png_bytes(&original).unwrap();
    let no_windows = server
        .upload("/v1/banks/no-windows/content", &original_png)
        .await;
    let item = server
        .upload("/v1/banks/files/content", &original_png)
        .await;
    // A lookup of the crop: the window channel, not a plain match.
    assert_eq!(
        lookup_channels(&server, &cropped).await,
        [("files".to_string(), "window".to_string())],
        "the reference"
    );

    let id = item["id"].as_i64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let hit = loop {
        let c = server.sightings(&format!("content_id={id}")).await;
        if let Some(hit) = c.first() {
            assert_eq!(c.len(), 1, "{c:?}");
            break hit.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retro-hunt never found the cropped copy"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(hit["url"], "https://t.me/c/779/1", "{hit}");
    let m = &hit["matches"][0];
    assert_eq!(m["found_by"], "retro_hunt", "{hit}");
    assert_eq!(m["channel"], "window", "{hit}");
    assert_eq!(m["signal_type"], "pdq", "{hit}");
    let photo = photo_sighting(&server, 779, 1, &cropped).await;
    assert_eq!(photo["matched"], true, "{photo}");
    let unrelated = photo_sighting(&server, 779, 2, &unrelated).await;
    assert_eq!(unrelated["matched"], false, "{unrelated}");
    let of_no_windows = server
        .sightings(&format!("content_id={}", no_windows["id"]))
        .await;
    assert!(of_no_windows.is_empty(), "{of_no_windows:?}");
    let _ = std::fs::remove_dir_all(dir);
}
