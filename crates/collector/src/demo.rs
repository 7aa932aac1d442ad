//! The collector's part of `serve --demo`: a small benign website (served
//! by the demo server itself) and a generated Telegram Desktop export, both
//! carrying altered re-uploads of the demo bank's items, so a newcomer sees
//! sightings — matched ones among them — appear within seconds.
//!
//! Everything is generated from the engine's demo generators (procedural
//! images, weather and sport texts): no real-world content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use echotrace_engine::demo::{
    altered_bytes, demo_images, demo_texts, demo_unrelated_image, png_bytes, Alteration,
};
use serde_json::json;

/// The demo website: path (under the site root) → (content type, bytes).
#[derive(Clone, Debug, Default)]
pub struct DemoSite {
    pub files: BTreeMap<String, (String, Vec<u8>)>,
}

impl DemoSite {
    pub fn get(&self, path: &str) -> Option<&(String, Vec<u8>)> {
        self.files.get(path.trim_start_matches('/'))
    }
}

fn page(title: &str, body: &str) -> Vec<u8> {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>{body}</body></html>"
    )
    .into_bytes()
}

/// Build the demo website. Links are relative, so it works under any root.
pub fn demo_site() -> Result<DemoSite, String> {
    let images = demo_images();
    let texts = demo_texts();
    let mut files = BTreeMap::new();
    let mut put = |path: &str, ct: &str, bytes: Vec<u8>| {
        files.insert(path.to_string(), (ct.to_string(), bytes));
    };
    let err = |e: echotrace_engine::EngineError| e.to_string();
    // Re-uploads of bank images, altered.
    let (resized, _) = altered_bytes(&images[0].image, Alteration::Resized).map_err(err)?;
    put("media/sunset-small.png", "image/png", resized);
    let (jpeg, _) = altered_bytes(&images[1].image, Alteration::Jpeg).map_err(err)?;
    put("media/rings.jpg", "image/jpeg", jpeg);
    let (grey, _) = altered_bytes(&images[3].image, Alteration::Greyscale).map_err(err)?;
    put("files/waves-grey.png", "image/png", grey);
    put(
        "media/unrelated.png",
        "image/png",
        png_bytes(&demo_unrelated_image()).map_err(err)?,
    );
    put(
        "index.html",
        "text/html; charset=utf-8",
        page(
            "Demo community board",
            &format!(
                "<h1>Community board</h1><p>{}</p>\
                 <img src=\"media/sunset-small.png\" alt=\"\"><img src=\"media/unrelated.png\" alt=\"\">\
                 <p><a href=\"post-1.html\">Match report</a> · <a href=\"locker/f/waves\">Download the pack</a> · \
                 <a href=\"locker/f/gone\">Old pack</a> · <a href=\"https://elsewhere.invalid/never-fetched\">elsewhere</a></p>",
                texts[0].edited
            ),
        ),
    );
    put(
        "post-1.html",
        "text/html; charset=utf-8",
        page(
            "Match report",
            &format!(
                "<article><p>{}</p><img src=\"media/rings.jpg\" alt=\"\"></article>",
                texts[1].edited
            ),
        ),
    );
    put(
        "locker/f/waves",
        "text/html; charset=utf-8",
        page(
            "waves-pack.png · demo locker",
            "<h1>waves-pack.png</h1><p>Size 40 KB</p><a class=\"download-button\" href=\"../../files/waves-grey.png\">Download</a>",
        ),
    );
    put(
        "locker/f/gone",
        "text/html; charset=utf-8",
        page(
            "File not found · demo locker",
            "<h1>Sorry</h1><p>This file has been removed.</p>",
        ),
    );
    Ok(DemoSite { files })
}

/// Write a generated Telegram Desktop export (result.json + photos/) into
/// `dir`, linking to the demo site at `site_root` (e.g.
/// `http://127.0.0.1:8080/demo/site/`). Returns the export folder.
pub fn write_telegram_export(dir: &Path, site_root: &str) -> Result<PathBuf, String> {
    let images = demo_images();
    let texts = demo_texts();
    let root = dir.join("telegram-export");
    std::fs::create_dir_all(root.join("photos")).map_err(|e| e.to_string())?;
    let (photo, _) =
        altered_bytes(&images[4].image, Alteration::Cropped).map_err(|e| e.to_string())?;
    std::fs::write(root.join("photos/photo_1@demo.png"), photo).map_err(|e| e.to_string())?;
    let exact = png_bytes(&images[2].image).map_err(|e| e.to_string())?;
    std::fs::write(root.join("photos/photo_2@demo.png"), exact).map_err(|e| e.to_string())?;
    let t0: i64 = 1_717_200_000;
    let messages = json!([
        {"id": 1, "type": "message", "date": "2024-06-01T00:00:00", "date_unixtime": t0.to_string(),
         "from": "Demo Channel", "from_id": "channel777", "text": "Welcome to the demo channel.",
         "text_entities": [{"type": "plain", "text": "Welcome to the demo channel."}]},
        {"id": 2, "type": "message", "date_unixtime": (t0 + 60).to_string(), "from": "Demo Channel",
         "text": ["New pack: ", {"type": "text_link", "text": "here", "href": format!("{site_root}locker/f/waves")}, " and the board ", {"type": "link", "text": format!("{site_root}index.html")}],
         "text_entities": [{"type": "plain", "text": "New pack: "}, {"type": "text_link", "text": "here", "href": format!("{site_root}locker/f/waves")}, {"type": "plain", "text": " and the board "}, {"type": "link", "text": format!("{site_root}index.html")}],
         "inline_bot_buttons": [[{"type": "url", "text": "Mirror", "data": format!("{site_root}post-1.html")}]]},
        {"id": 3, "type": "message", "date_unixtime": (t0 + 120).to_string(), "from": "Demo Channel",
         "forwarded_from": "Another Demo Channel", "photo": "photos/photo_1@demo.png", "width": 220, "height": 220,
         "text": texts[0].edited, "text_entities": [{"type": "plain", "text": texts[0].edited}]},
        {"id": 4, "type": "message", "date_unixtime": (t0 + 180).to_string(), "from": "Demo Channel",
         "photo": "photos/photo_2@demo.png", "text": ""},
        {"id": 5, "type": "message", "date_unixtime": (t0 + 240).to_string(), "from": "Demo Channel",
         "file": "(File not included. Change data exporting settings to download.)", "media_type": "video_file",
         "mime_type": "video/mp4", "text": "Video of the week"},
        {"id": 6, "type": "service", "date_unixtime": (t0 + 300).to_string(), "action": "pin_message", "text": ""}
    ]);
    let export =
        json!({"name": "Demo Channel", "type": "public_channel", "id": 777, "messages": messages});
    std::fs::write(
        root.join("result.json"),
        serde_json::to_vec_pretty(&export).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_and_export_are_generated() {
        let site = demo_site().unwrap();
        assert!(site.get("/index.html").is_some());
        assert!(site.get("files/waves-grey.png").is_some());
        let dir = std::env::temp_dir().join(format!("et-demo-{}", std::process::id()));
        let root = write_telegram_export(&dir, "http://127.0.0.1:1/demo/site/").unwrap();
        let mut n = 0;
        crate::telegram::read_export(&root, |_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 6);
        let _ = std::fs::remove_dir_all(dir);
    }
}
