//! Hash lists line by line, as operators and exchanges hand them over:
//! `echotrace bank import` lines (bare PDQ, or `type,value[,labels]`, comma
//! or tab separated) and a `file` exchange's lines (CSV, JSON Lines, pytx
//! `type value`, auto), each line's value then checked as the exchange
//! worker checks it. The first byte picks the parser and its options. A line
//! is taken, skipped or refused with a reason; never a panic.
#![no_main]

use echotrace_engine::exchange::RecordLabels;
use echotrace_engine::parse_hash_list_line;
use echotrace_exchange::adapter::file::{parse_line, FileFormat};
use echotrace_exchange::adapter::record;
use echotrace_signals::signal::SignalType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    let labels = ["fuzz".to_string()];
    for (i, line) in text.lines().enumerate() {
        match pick % 5 {
            0 => {
                if let Ok(Some(item)) = parse_hash_list_line(line, i == 0, &labels, "fuzz") {
                    assert!(!item.signals().is_empty(), "an item without signals");
                }
            }
            n => {
                let format = match n {
                    1 => FileFormat::Csv,
                    2 => FileFormat::Jsonl,
                    3 => FileFormat::Lines,
                    _ => FileFormat::Auto,
                };
                let default_type = (pick & 0x80 != 0).then_some(SignalType::Pdq);
                if let Ok(Some((st, value, labels, id, deleted))) =
                    parse_line(line, format, default_type, i as u64 + 1)
                {
                    let labels = RecordLabels::from_flat(&labels);
                    let _ = record(st, &value, id, labels, Vec::new(), (None, None), deleted);
                }
            }
        }
    }
});
