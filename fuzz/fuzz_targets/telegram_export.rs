//! Telegram Desktop export reader: any bytes as `result.json` must give
//! messages or a positioned error, never a panic or unbounded memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0u64;
    let _ = echotrace_collector::telegram::read_export_from(data, "result.json", &mut |_chat, msg| {
        n += 1;
        let _ = msg.url(&Default::default());
        if n > 100_000 {
            return Err("enough".into());
        }
        Ok(())
    });
});
