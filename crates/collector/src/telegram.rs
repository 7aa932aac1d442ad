//! Telegram Desktop's JSON export (`result.json` plus its media folders),
//! read offline, with no Telegram API.
//!
//! The format is tdesktop's `export/output/export_output_json.cpp`:
//! * a single-chat export is `{name, type, id, messages: [...]}`; a full
//!   account export nests chats under `chats.list` (and `left_chats.list`);
//! * a message is keyed by (chat `id`, message `id`) and dated by
//!   `date_unixtime`, a **string** of seconds (`date` is local time without
//!   a zone and is not used);
//! * `text` is a string **or** an array of strings and `{type, text, …}`
//!   objects; `text_entities` is always an array of objects (`plain`,
//!   `link` — the text is the URL —, `text_link` — the URL is in `href` —,
//!   `mention`, `hashtag`, …). Entities are preferred when present;
//! * outlinks come from `link` and `text_link` entities and from
//!   `inline_bot_buttons` rows (buttons of type `url`, `auth`, `web_view`
//!   carry the URL in `data`);
//! * media paths (`photo`, `file`, `thumbnail`) are relative to the export
//!   folder; a skipped file is a placeholder string instead of a path —
//!   "(File not included. Change data exporting settings to download.)",
//!   "(File exceeds maximum size. …)", "(File unavailable, please try again
//!   later)" (and "(Photo …)" variants) — and is reported as missing, never
//!   opened as a file;
//! * `forwarded_from` is a display name (tdesktop does not export the
//!   source's id).
//!
//! Messages are parsed one at a time and handed to a callback. A file of up
//! to [`WHOLE_FILE_MAX`] bytes is read into memory first and parsed from
//! there (serde_json parses a slice several times faster than a reader: it
//! scans strings in bulk instead of byte by byte, counting lines and
//! columns only when it reports an error); a larger one is read as a
//! stream, so a channel of any length is read in bounded memory. A
//! truncated or malformed file is an error naming the line and column (and
//! the last message read), either way.

use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The chat a message belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatInfo {
    pub id: i64,
    pub name: String,
    /// `public_channel`, `private_supergroup`, …
    pub kind: String,
}

/// A media file a message refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRef {
    /// `photo`, `file` or `thumbnail`.
    pub field: &'static str,
    /// Path relative to the export folder, when the file was exported.
    pub path: Option<String>,
    /// The placeholder text, when it was not.
    pub missing: Option<String>,
    pub media_type: Option<String>,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
}

/// One message, as the importer needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub id: i64,
    /// `message`, `service`, `unsupported`.
    pub kind: String,
    /// Seconds since the epoch (`date_unixtime`).
    pub date_unixtime: Option<i64>,
    pub from: Option<String>,
    pub from_id: Option<String>,
    pub forwarded_from: Option<String>,
    pub reply_to_message_id: Option<i64>,
    /// The message text (entities joined).
    pub text: String,
    /// Outlinks, in order, deduplicated.
    pub links: Vec<String>,
    pub media: Vec<MediaRef>,
}

impl Message {
    /// The message's link: `https://t.me/c/<chat>/<id>`.
    pub fn url(&self, chat: &ChatInfo) -> String {
        format!("https://t.me/c/{}/{}", chat.id.unsigned_abs(), self.id)
    }
}

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {message}")]
    Open { path: String, message: String },
    #[error("{path}: malformed export at line {line}, column {column}: {message}{after}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
        /// ` (after message id N, the Mth message)` when known.
        after: String,
    },
    #[error("{0}")]
    Stopped(String),
}

/// Where `result.json` is: `path` itself, or `path/result.json`.
pub fn locate_result_json(path: &Path) -> Result<(PathBuf, PathBuf), ExportError> {
    let open_err = |message: String| ExportError::Open {
        path: path.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| open_err(e.to_string()))?;
    if meta.is_dir() {
        let file = path.join("result.json");
        if !file.is_file() {
            return Err(open_err(
                "no result.json in this folder (export the chat from Telegram Desktop as JSON)"
                    .into(),
            ));
        }
        Ok((file, path.to_path_buf()))
    } else {
        let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok((path.to_path_buf(), root))
    }
}

/// Resolve a media path inside the export folder; refuses absolute paths
/// and `..` (a crafted export must not make the importer read other files).
pub fn media_path(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let rel = Path::new(relative);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "media path {relative:?} leaves the export folder; not read"
        ));
    }
    Ok(root.join(rel))
}

/// Is this `photo`/`file` value tdesktop's "not exported" placeholder?
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.ends_with(')') && (v.contains("(File ") || v.contains("(Photo "))
}

/// Exports up to this size (32 MiB, some 40,000 messages of text) are read
/// whole and parsed from memory; larger ones are streamed.
pub const WHOLE_FILE_MAX: u64 = 32 << 20;

/// Read the export at `path` (a folder or its `result.json`), calling
/// `on_message` for every message in file order. The callback may stop the
/// read by returning an error message. Returns the chats seen.
pub fn read_export<F>(path: &Path, mut on_message: F) -> Result<Vec<ChatInfo>, ExportError>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    let (file, _root) = locate_result_json(path)?;
    let name = file.display().to_string();
    let open_err = |e: std::io::Error| ExportError::Open {
        path: name.clone(),
        message: e.to_string(),
    };
    let f = std::fs::File::open(&file).map_err(open_err)?;
    let len = f.metadata().map_err(open_err)?.len();
    if len > WHOLE_FILE_MAX {
        return read_export_from(f, &name, &mut on_message);
    }
    // The file may grow while it is read: never hold more than the cap.
    let mut buf = Vec::with_capacity(len as usize);
    f.take(WHOLE_FILE_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(open_err)?;
    if buf.len() as u64 > WHOLE_FILE_MAX {
        let f = std::fs::File::open(&file).map_err(open_err)?;
        return read_export_from(f, &name, &mut on_message);
    }
    read_export_slice(&buf, &name, &mut on_message)
}

/// [`read_export`] from any reader (`name` is used in errors), streamed.
pub fn read_export_from<R: Read, F>(
    input: R,
    name: &str,
    on_message: &mut F,
) -> Result<Vec<ChatInfo>, ExportError>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    let reader = std::io::BufReader::with_capacity(256 << 10, input);
    read_with(
        serde_json::Deserializer::from_reader(reader),
        name,
        on_message,
    )
}

/// [`read_export`] from the export's bytes in memory.
pub fn read_export_slice<F>(
    input: &[u8],
    name: &str,
    on_message: &mut F,
) -> Result<Vec<ChatInfo>, ExportError>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    read_with(
        serde_json::Deserializer::from_slice(input),
        name,
        on_message,
    )
}

fn read_with<'de, R, F>(
    mut de: serde_json::Deserializer<R>,
    name: &str,
    on_message: &mut F,
) -> Result<Vec<ChatInfo>, ExportError>
where
    R: serde_json::de::Read<'de>,
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    let mut progress = Progress::default();
    let mut chats = Vec::new();
    let seed = ChatSeed {
        on_message,
        progress: &mut progress,
        chats: &mut chats,
        top: true,
    };
    let result = seed.deserialize(&mut de).and_then(|_| de.end());
    match result {
        Ok(()) => Ok(chats),
        Err(e) => {
            if let Some(stop) = progress.stopped.take() {
                return Err(ExportError::Stopped(stop));
            }
            let after = match progress.last_id {
                Some(id) => format!(" (after message id {id}, the {}th message)", progress.count),
                None => String::new(),
            };
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            Err(ExportError::Syntax {
                path: name.to_string(),
                line: e.line(),
                column: e.column(),
                message,
                after,
            })
        }
    }
}

#[derive(Default)]
struct Progress {
    count: u64,
    last_id: Option<i64>,
    stopped: Option<String>,
}

/// A chat object (or the top-level object, which may be one, or hold
/// `chats.list`).
struct ChatSeed<'a, F> {
    on_message: &'a mut F,
    progress: &'a mut Progress,
    chats: &'a mut Vec<ChatInfo>,
    top: bool,
}

impl<'de, F> DeserializeSeed<'de> for ChatSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for ChatSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut chat = ChatInfo::default();
        let mut have_id = false;
        let mut had_messages = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => chat.name = map.next_value::<Option<String>>()?.unwrap_or_default(),
                "type" => chat.kind = map.next_value::<Option<String>>()?.unwrap_or_default(),
                "id" => {
                    chat.id = map.next_value::<i64>()?;
                    have_id = true;
                }
                "messages" => {
                    if !have_id {
                        return Err(serde::de::Error::custom(
                            "a chat's \"messages\" come before its \"id\"",
                        ));
                    }
                    had_messages = true;
                    map.next_value_seed(MessagesSeed {
                        chat: &chat,
                        on_message: &mut *self.on_message,
                        progress: &mut *self.progress,
                    })?;
                }
                "chats" | "left_chats" if self.top => {
                    map.next_value_seed(ListSeed {
                        on_message: &mut *self.on_message,
                        progress: &mut *self.progress,
                        chats: &mut *self.chats,
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if had_messages {
            self.chats.push(chat);
        } else if self.top && self.chats.is_empty() {
            return Err(serde::de::Error::custom(
                "no \"messages\" (nor \"chats\".\"list\"): not a Telegram Desktop JSON export",
            ));
        }
        Ok(())
    }
}

/// `{"about": …, "list": [chat, …]}`.
struct ListSeed<'a, F> {
    on_message: &'a mut F,
    progress: &'a mut Progress,
    chats: &'a mut Vec<ChatInfo>,
}

impl<'de, F> DeserializeSeed<'de> for ListSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F> Visitor<'de> for ListSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a \"list\" of chats")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "list" {
                map.next_value_seed(ChatListSeed {
                    on_message: &mut *self.on_message,
                    progress: &mut *self.progress,
                    chats: &mut *self.chats,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ChatListSeed<'a, F> {
    on_message: &'a mut F,
    progress: &'a mut Progress,
    chats: &'a mut Vec<ChatInfo>,
}

impl<'de, F> DeserializeSeed<'de> for ChatListSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for ChatListSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chats")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ChatSeed {
                on_message: &mut *self.on_message,
                progress: &mut *self.progress,
                chats: &mut *self.chats,
                top: false,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct MessagesSeed<'a, F> {
    chat: &'a ChatInfo,
    on_message: &'a mut F,
    progress: &'a mut Progress,
}

impl<'de, F> DeserializeSeed<'de> for MessagesSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for MessagesSeed<'_, F>
where
    F: FnMut(&ChatInfo, Message) -> Result<(), String>,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<RawMessage>()? {
            let msg = raw.into_message();
            self.progress.count += 1;
            self.progress.last_id = Some(msg.id);
            if let Err(stop) = (self.on_message)(self.chat, msg) {
                self.progress.stopped = Some(stop.clone());
                return Err(serde::de::Error::custom(stop));
            }
        }
        Ok(())
    }
}

// ----- the message shape -----------------------------------------------------

#[derive(Deserialize)]
struct RawMessage {
    id: i64,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    date_unixtime: Option<Unixtime>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_id: Option<String>,
    #[serde(default)]
    forwarded_from: Option<String>,
    #[serde(default)]
    reply_to_message_id: Option<i64>,
    #[serde(default)]
    text: Option<TextField>,
    #[serde(default)]
    text_entities: Option<Vec<Entity>>,
    #[serde(default)]
    inline_bot_buttons: Option<Vec<Vec<Button>>>,
    #[serde(default)]
    photo: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    thumbnail: Option<String>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    mime_type: Option<String>,
    #[serde(default)]
    file_name: Option<String>,
}

/// `date_unixtime` is a string in tdesktop's output; a number is accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Unixtime {
    Text(String),
    Number(i64),
}

/// `text`: a string or an array of strings and entity objects. Read by
/// hand (not `#[serde(untagged)]`, which buffers every value to try each
/// shape in turn).
enum TextField {
    Plain(String),
    Parts(Vec<TextPart>),
}

enum TextPart {
    Plain(String),
    Entity(Entity),
}

impl<'de> Deserialize<'de> for TextField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings and entities")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextField, E> {
                Ok(TextField::Plain(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<TextField, E> {
                Ok(TextField::Plain(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextField, A::Error> {
                let mut parts = Vec::new();
                while let Some(p) = seq.next_element::<TextPart>()? {
                    parts.push(p);
                }
                Ok(TextField::Parts(parts))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for TextPart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextPart;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an entity object")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TextPart, E> {
                Ok(TextPart::Plain(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<TextPart, E> {
                Ok(TextPart::Plain(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TextPart, A::Error> {
                Entity::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(TextPart::Entity)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct Entity {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    href: Option<String>,
}

#[derive(Deserialize)]
struct Button {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    data: Option<String>,
}

/// A `link` entity's text may lack a scheme (`example.com/x`).
fn link_url(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || t.contains(char::is_whitespace) {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Some(t.to_string())
    } else if lower.contains("://") || lower.starts_with("mailto:") || lower.starts_with("tg:") {
        None
    } else {
        Some(format!("http://{t}"))
    }
}

impl RawMessage {
    fn into_message(self) -> Message {
        let mut text = String::new();
        let mut links: Vec<String> = Vec::new();
        let push_link = |u: Option<String>, links: &mut Vec<String>| {
            if let Some(u) = u {
                if !links.contains(&u) {
                    links.push(u);
                }
            }
        };
        let entities: Vec<Entity> = match (self.text_entities, self.text) {
            (Some(e), _) => e,
            (None, Some(TextField::Plain(s))) => vec![Entity {
                kind: "plain".into(),
                text: s,
                href: None,
            }],
            (None, Some(TextField::Parts(parts))) => parts
                .into_iter()
                .map(|p| match p {
                    TextPart::Plain(s) => Entity {
                        kind: "plain".into(),
                        text: s,
                        href: None,
                    },
                    TextPart::Entity(e) => e,
                })
                .collect(),
            (None, None) => Vec::new(),
        };
        for e in &entities {
            text.push_str(&e.text);
            match e.kind.as_str() {
                "link" => push_link(link_url(&e.text), &mut links),
                "text_link" => push_link(e.href.as_deref().and_then(link_url), &mut links),
                _ => {}
            }
        }
        for row in self.inline_bot_buttons.iter().flatten() {
            for b in row {
                if matches!(
                    b.kind.as_str(),
                    "url" | "auth" | "web_view" | "simple_web_view"
                ) {
                    push_link(b.data.as_deref().and_then(link_url), &mut links);
                }
            }
        }
        let mut media = Vec::new();
        for (field, value) in [
            ("photo", self.photo),
            ("file", self.file),
            ("thumbnail", self.thumbnail),
        ] {
            let Some(v) = value else { continue };
            let (path, missing) = if is_placeholder(&v) {
                (None, Some(v))
            } else if v.trim().is_empty() {
                continue;
            } else {
                (Some(v), None)
            };
            media.push(MediaRef {
                field,
                path,
                missing,
                media_type: self.media_type.clone(),
                mime_type: self.mime_type.clone(),
                file_name: self.file_name.clone(),
            });
        }
        Message {
            id: self.id,
            kind: self.kind.unwrap_or_else(|| "message".into()),
            date_unixtime: match self.date_unixtime {
                Some(Unixtime::Text(s)) => s.trim().parse().ok(),
                Some(Unixtime::Number(n)) => Some(n),
                None => None,
            },
            from: self.from,
            from_id: self.from_id,
            forwarded_from: self.forwarded_from,
            reply_to_message_id: self.reply_to_message_id,
            text,
            links,
            media,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `s` both streamed and from memory; both must agree, errors
    /// included.
    fn read(s: &str) -> Result<(Vec<ChatInfo>, Vec<Message>), ExportError> {
        let mut msgs = Vec::new();
        let streamed = read_export_from(s.as_bytes(), "result.json", &mut |_c: &ChatInfo, m| {
            msgs.push(m);
            Ok(())
        });
        let mut from_memory = Vec::new();
        let whole = read_export_slice(s.as_bytes(), "result.json", &mut |_c: &ChatInfo, m| {
            from_memory.push(m);
            Ok(())
        });
        assert_eq!(msgs, from_memory);
        match (streamed, whole) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b);
                Ok((a, msgs))
            }
            (Err(a), Err(b)) => {
                match (&a, &b) {
                    (
                        ExportError::Syntax {
                            line,
                            column,
                            message,
                            after,
                            ..
                        },
                        ExportError::Syntax {
                            line: l2,
                            column: c2,
                            message: m2,
                            after: a2,
                            ..
                        },
                    ) => {
                        // serde_json's readers may place a type error at
                        // the start of a value one column apart.
                        assert!(line == l2 && column.abs_diff(*c2) <= 1, "{a} / {b}");
                        assert_eq!((message, after), (m2, a2));
                    }
                    _ => assert_eq!(a.to_string(), b.to_string()),
                }
                Err(a)
            }
            (a, b) => panic!("streamed {a:?}, from memory {b:?}"),
        }
    }

    #[test]
    fn both_text_shapes_entities_buttons_media() {
        let json = r#"{
 "name": "Weather Channel", "type": "public_channel", "id": 1234567,
 "messages": [
  {"id": 1, "type": "message", "date": "2024-01-02T03:04:05", "date_unixtime": "1704164645",
   "from": "Weather", "from_id": "channel1234567", "text": "plain words here",
   "text_entities": [{"type": "plain", "text": "plain words here"}]},
  {"id": 2, "type": "message", "date_unixtime": "1704164700", "forwarded_from": "Other Channel",
   "text": ["see ", {"type": "link", "text": "example.org/a"}, " and ", {"type": "text_link", "text": "this", "href": "https://files.example/f/1"}],
   "text_entities": [{"type": "plain", "text": "see "}, {"type": "link", "text": "example.org/a"}, {"type": "plain", "text": " and "}, {"type": "text_link", "text": "this", "href": "https://files.example/f/1"}],
   "inline_bot_buttons": [[{"type": "url", "text": "Open", "data": "https://mirror.example/x"}, {"type": "callback", "text": "cb", "dataBase64": "AA", "data": ""}]],
   "photo": "photos/photo_1.jpg", "width": 10, "height": 10},
  {"id": 3, "type": "message", "date_unixtime": "1704164800",
   "file": "(File not included. Change data exporting settings to download.)",
   "thumbnail": "(File exceeds maximum size. Change data exporting settings to download.)",
   "media_type": "video_file", "mime_type": "video/mp4", "text": ""},
  {"id": 4, "type": "service", "date_unixtime": "1704164900", "action": "pin_message", "text": ""}
 ]}"#;
        let (chats, m) = read(json).unwrap();
        assert_eq!(chats.len(), 1);
        assert_eq!(chats[0].id, 1234567);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].text, "plain words here");
        assert_eq!(m[0].date_unixtime, Some(1_704_164_645));
        assert_eq!(m[1].forwarded_from.as_deref(), Some("Other Channel"));
        assert_eq!(
            m[1].links,
            vec![
                "http://example.org/a".to_string(),
                "https://files.example/f/1".to_string(),
                "https://mirror.example/x".to_string()
            ]
        );
        assert_eq!(m[1].text, "see example.org/a and this");
        assert_eq!(m[1].media[0].path.as_deref(), Some("photos/photo_1.jpg"));
        assert!(m[2]
            .media
            .iter()
            .all(|x| x.path.is_none() && x.missing.is_some()));
        assert_eq!(m[2].media.len(), 2);
        assert_eq!(m[3].kind, "service");
        assert_eq!(m[1].url(&chats[0]), "https://t.me/c/1234567/2");
    }

    #[test]
    fn account_export_and_errors() {
        let json = r#"{"about": "x", "chats": {"about": "y", "list": [
            {"name": "A", "type": "private_group", "id": 1, "messages": [{"id": 1, "text": "a"}]},
            {"name": null, "type": "saved_messages", "id": 2, "messages": [{"id": 7, "text": ["b"]}]}
        ]}}"#;
        let (chats, m) = read(json).unwrap();
        assert_eq!(chats.len(), 2);
        assert_eq!(m.len(), 2);
        // Truncated.
        let cut = &json[..json.len() - 20];
        let e = read(cut).unwrap_err().to_string();
        assert!(e.contains("line") && e.contains("column"), "{e}");
        assert!(e.contains("after message id"), "{e}");
        // Malformed type.
        let bad = r#"{"id": 1, "messages": [{"id": "seven"}]}"#;
        let e = read(bad).unwrap_err().to_string();
        assert!(e.contains("line 1, column"), "{e}");
        // Not an export.
        assert!(read(r#"{"hello": 1}"#)
            .unwrap_err()
            .to_string()
            .contains("not a Telegram"));
        assert!(read("[1,2]").is_err());
        assert!(read("").is_err());
    }

    #[test]
    fn media_paths_stay_inside() {
        let root = Path::new("/exports/chat");
        assert!(media_path(root, "photos/a.jpg").is_ok());
        assert!(media_path(root, "../etc/passwd").is_err());
        assert!(media_path(root, "/etc/passwd").is_err());
        assert!(media_path(root, "photos/../../x").is_err());
        assert!(is_placeholder("(File unavailable, please try again later)"));
        assert!(is_placeholder(
            "Name (File not included. Change data exporting settings to download.)"
        ));
        assert!(!is_placeholder("files/(draft).pdf"));
    }
}
