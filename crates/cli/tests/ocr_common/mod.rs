//! Benign claim-card-like images for the OCR tests and benchmark
//! (`bench/src/bin/ocr.rs` includes this file by path).
//!
//! Statements are news-style sentences, football results and weather
//! bulletins, in English and Arabic, built from slot templates with a
//! seeded generator so every statement is distinct. Text is shaped and
//! rendered by Pango (`pango-view`, Debian `pango1.0-tools`; Arabic needs
//! real shaping) in free fonts (Debian `fonts-dejavu-core`,
//! `fonts-noto-core`, `fonts-hosny-amiri`), then composited here onto a
//! plain, gradient or photo background (the PDQ fixture photos), with or
//! without a logo, and written as JPEG at quality 30–90.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use image::{Rgb, RgbImage, RgbaImage};

/// Deterministic splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ar,
}

const EN_TEAMS: &[&str] = &[
    "City Rovers",
    "Harbour United",
    "Northgate Athletic",
    "Riverside Wanderers",
    "Valley Rangers",
    "Old Mill Town",
    "Eastfield Albion",
    "Westbrook Celtic",
    "Lakeside Dynamo",
    "Hillcrest Villa",
    "Bayview Sporting",
    "Greenwood Forest",
];
const EN_CITIES: &[&str] = &[
    "Lisbon", "Oslo", "Nairobi", "Lima", "Hanoi", "Tunis", "Quebec", "Perth", "Bergen", "Porto",
    "Accra", "Cusco",
];
const EN_DAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const EN_WEATHER: &[&str] = &[
    "heavy rain",
    "light snow",
    "strong winds",
    "dense fog",
    "bright sunshine",
    "scattered showers",
    "thunderstorms",
    "a heat wave",
];
const EN_THINGS: &[&str] = &[
    "the new library",
    "a solar farm",
    "the harbour bridge",
    "a children's hospital",
    "the tram line",
    "a science museum",
    "the public park",
    "a water plant",
];
const EN_PEOPLE: &[&str] = &[
    "the mayor",
    "the regional council",
    "the transport minister",
    "local volunteers",
    "the school board",
    "the health authority",
];

const AR_TEAMS: &[&str] = &[
    "نادي المدينة",
    "فريق الميناء",
    "النجم الساحلي",
    "الوادي الرياضي",
    "نادي الجبل",
    "فريق النهر",
    "الشباب الأهلي",
    "نادي الواحة",
    "الاتحاد الشرقي",
    "فريق البحيرة",
];
const AR_CITIES: &[&str] = &[
    "تونس",
    "عمان",
    "الرباط",
    "بيروت",
    "الدوحة",
    "مسقط",
    "القاهرة",
    "الجزائر",
    "الكويت",
    "صنعاء",
];
const AR_DAYS: &[&str] = &[
    "الاثنين",
    "الثلاثاء",
    "الأربعاء",
    "الخميس",
    "الجمعة",
    "السبت",
    "الأحد",
];
const AR_WEATHER: &[&str] = &[
    "أمطار غزيرة",
    "رياح قوية",
    "ضباب كثيف",
    "أجواء مشمسة",
    "عواصف رعدية",
    "موجة حر",
    "زخات متفرقة",
];
const AR_THINGS: &[&str] = &[
    "المكتبة الجديدة",
    "محطة الطاقة الشمسية",
    "جسر الميناء",
    "مستشفى الأطفال",
    "خط الترام",
    "متحف العلوم",
    "الحديقة العامة",
];
const AR_PEOPLE: &[&str] = &[
    "رئيس البلدية",
    "المجلس الإقليمي",
    "وزير النقل",
    "المتطوعون",
    "إدارة المدارس",
];

/// Detail sentences: `{n}` is a number, `{p}` a place; the slots break
/// every sentence into short fixed runs, so statements that happen to share
/// a detail template still share few word 3-shingles.
const EN_DETAILS: &[&str] = &[
    "Ticket sales in {p} rose by {n} percent this season.",
    "Volunteers from {p} handed out {n} bottles of water.",
    "Radio {p} broadcast the event live on {n} stations.",
    "A spokesperson in {p} thanked {n} bus drivers for extra shifts.",
    "Schools around {p} will close {n} minutes early that day.",
    "The {p} library now stays open until {n} in the evening.",
    "Farmers from {p} sold {n} loaves of fresh bread at the market.",
    "Road works near {p} were paused for {n} days.",
    "Children from {n} schools in {p} painted a mural by the entrance.",
    "The {p} museum offered {n} free guided tours.",
    "Cyclists in {p} were asked to use route {n} along the river.",
    "A new ferry from {p} will sail {n} times a week.",
    "Residents of {p} sent {n} questions to the council.",
    "Photographs of the day will hang in {p} for {n} weeks.",
    "The {p} harbour lights came on {n} minutes early.",
    "Trains to {p} will run every {n} minutes.",
];

const AR_DETAILS: &[&str] = &[
    "ارتفعت مبيعات التذاكر في {p} بنسبة {n} في المئة",
    "وزع متطوعون من {p} نحو {n} زجاجة ماء",
    "بثت إذاعة {p} الحدث مباشرة على {n} محطة",
    "شكر متحدث في {p} نحو {n} من سائقي الحافلات",
    "ستغلق مدارس {p} قبل الموعد بـ {n} دقيقة",
    "مددت مكتبة {p} ساعات عملها حتى الساعة {n} مساء",
    "باع مزارعو {p} نحو {n} رغيف خبز في السوق",
    "توقفت أعمال الطريق قرب {p} لمدة {n} أيام",
    "رسم أطفال من {n} مدارس في {p} جدارية عند المدخل",
    "قدم متحف {p} نحو {n} جولة إرشادية مجانية",
    "طلب من راكبي الدراجات في {p} استخدام الطريق رقم {n}",
    "ستبحر عبارة جديدة من {p} {n} مرات في الأسبوع",
    "أرسل سكان {p} نحو {n} سؤالا إلى المجلس",
    "ستعرض صور هذا اليوم في {p} لمدة {n} أسابيع",
    "أضيئت أنوار ميناء {p} قبل موعدها بـ {n} دقيقة",
    "ستسير القطارات إلى {p} كل {n} دقيقة",
];

/// A benign statement: a lead of one of three kinds (football result,
/// weather bulletin, news of an opening), every slot drawn from `rng`, then
/// two distinct detail sentences from a pool. The fixed words of a kind are
/// few, so two different statements share few word 3-shingles (the bench
/// checks that no two statements match each other as typed text).
pub fn statement(lang: Lang, rng: &mut Rng) -> String {
    let n = |rng: &mut Rng, lo: usize, hi: usize| lo + rng.below(hi - lo + 1);
    let lead = match (lang, rng.below(3)) {
        (Lang::En, 0) => {
            let a = rng.pick(EN_TEAMS);
            let mut b = rng.pick(EN_TEAMS);
            while b == a {
                b = rng.pick(EN_TEAMS);
            }
            format!(
                "{a} beat {b} {}-{} on {} in front of {} supporters.",
                n(rng, 2, 6),
                n(rng, 0, 1),
                rng.pick(EN_DAYS),
                n(rng, 3, 60) * 1000
            )
        }
        (Lang::En, 1) => format!(
            "Weather for {}: {} from {} morning, near {} degrees in the {} districts.",
            rng.pick(EN_CITIES),
            rng.pick(EN_WEATHER),
            rng.pick(EN_DAYS),
            n(rng, 2, 40),
            rng.pick(&["northern", "southern", "eastern", "western", "coastal", "hill"])
        ),
        (Lang::En, _) => format!(
            "In {}, {} opened {} on {} after {} years of work.",
            rng.pick(EN_CITIES),
            rng.pick(EN_PEOPLE),
            rng.pick(EN_THINGS),
            rng.pick(EN_DAYS),
            n(rng, 2, 12)
        ),
        (Lang::Ar, 0) => {
            let a = rng.pick(AR_TEAMS);
            let mut b = rng.pick(AR_TEAMS);
            while b == a {
                b = rng.pick(AR_TEAMS);
            }
            format!(
                "فاز {a} على {b} بنتيجة {} مقابل {} يوم {} أمام {} ألف متفرج",
                n(rng, 2, 6),
                n(rng, 0, 1),
                rng.pick(AR_DAYS),
                n(rng, 3, 60)
            )
        }
        (Lang::Ar, 1) => format!(
            "طقس {}: {} صباح يوم {} مع حرارة تقارب {} درجة في المناطق {}",
            rng.pick(AR_CITIES),
            rng.pick(AR_WEATHER),
            rng.pick(AR_DAYS),
            n(rng, 2, 40),
            rng.pick(&[
                "الشمالية",
                "الجنوبية",
                "الشرقية",
                "الغربية",
                "الساحلية",
                "الجبلية"
            ])
        ),
        (Lang::Ar, _) => format!(
            "في {} افتتح {} {} يوم {} بعد {} سنوات من العمل",
            rng.pick(AR_CITIES),
            rng.pick(AR_PEOPLE),
            rng.pick(AR_THINGS),
            rng.pick(AR_DAYS),
            n(rng, 2, 12)
        ),
    };
    let pool = if lang == Lang::Ar {
        AR_DETAILS
    } else {
        EN_DETAILS
    };
    let first = rng.below(pool.len());
    let mut second = rng.below(pool.len());
    while second == first {
        second = rng.below(pool.len());
    }
    let mut out = lead;
    for i in [first, second] {
        let places = if lang == Lang::Ar {
            AR_CITIES
        } else {
            EN_CITIES
        };
        let d = pool[i]
            .replace("{n}", &n(rng, 2, 90).to_string())
            .replace("{p}", rng.pick(places));
        out.push_str(if lang == Lang::Ar { "، " } else { " " });
        out.push_str(&d);
    }
    out
}

pub const EN_FONTS: &[&str] = &[
    "DejaVu Sans",
    "DejaVu Serif",
    "Noto Sans",
    "Noto Serif",
    "DejaVu Sans Bold",
];
pub const AR_FONTS: &[&str] = &[
    "Amiri",
    "Noto Naskh Arabic",
    "Noto Sans Arabic",
    "DejaVu Sans",
    "Amiri Bold",
];

#[derive(Clone, Debug)]
pub enum Background {
    Plain([u8; 3]),
    Gradient([u8; 3], [u8; 3]),
    /// Index into the photo list.
    Photo(usize),
}

/// How one card looks.
#[derive(Clone, Debug)]
pub struct Design {
    pub font: String,
    pub size_pt: u32,
    /// Text block width, px.
    pub width: u32,
    pub align: &'static str,
    pub background: Background,
    pub logo: bool,
    pub quality: u8,
}

/// A random design (`variant` makes bank and query designs differ).
pub fn design(lang: Lang, rng: &mut Rng, photos: usize) -> Design {
    let fonts = if lang == Lang::Ar { AR_FONTS } else { EN_FONTS };
    let background = match rng.below(3) {
        0 => Background::Plain(light_or_dark(rng)),
        1 => {
            // Both ends light or both dark, so the text stays readable.
            let a = light_or_dark(rng);
            let mut b = light_or_dark(rng);
            while (luma(a) > 110) != (luma(b) > 110) {
                b = light_or_dark(rng);
            }
            Background::Gradient(a, b)
        }
        _ if photos > 0 => Background::Photo(rng.below(photos)),
        _ => Background::Plain([250, 250, 245]),
    };
    Design {
        font: fonts[rng.below(fonts.len())].to_string(),
        size_pt: [16, 20, 24, 28, 32][rng.below(5)],
        width: [700, 820, 960, 1100][rng.below(4)],
        align: ["left", "center", "right"][rng.below(3)],
        background,
        logo: rng.below(2) == 0,
        quality: [30, 45, 60, 75, 90][rng.below(5)],
    }
}

fn light_or_dark(rng: &mut Rng) -> [u8; 3] {
    let base = if rng.below(2) == 0 { 200 } else { 20 };
    [
        base + rng.below(50) as u8,
        base + rng.below(50) as u8,
        base + rng.below(50) as u8,
    ]
}

fn luma(c: [u8; 3]) -> u32 {
    (u32::from(c[0]) * 299 + u32::from(c[1]) * 587 + u32::from(c[2]) * 114) / 1000
}

/// Render `text` with pango-view into an RGBA image (transparent background).
#[allow(clippy::too_many_arguments)] // a test helper mirroring pango-view's flags
pub fn pango(
    text: &str,
    lang: Lang,
    font: &str,
    size_pt: u32,
    width: u32,
    align: &str,
    fg: &str,
    tmp: &Path,
) -> RgbaImage {
    let out = tmp.join(format!("pango-{}.png", std::process::id()));
    let mut cmd = Command::new("pango-view");
    cmd.arg("-q")
        .arg(format!("--font={font} {size_pt}"))
        .arg(format!("--width={width}"))
        .arg("--wrap=word")
        .arg(format!("--align={align}"))
        .arg("--background=transparent")
        .arg(format!("--foreground={fg}"))
        .arg("--margin=0")
        .arg("--dpi=96")
        .arg("--pixels")
        .arg("-o")
        .arg(&out)
        .arg(format!("--text={text}"));
    if lang == Lang::Ar {
        cmd.arg("--rtl");
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("pango-view (apt-get install pango1.0-tools): {e}"));
    assert!(status.success(), "pango-view failed");
    let img = image::open(&out).unwrap_or_else(|e| panic!("reading pango output: {e}"));
    let _ = std::fs::remove_file(&out);
    img.to_rgba8()
}

/// The photo backgrounds: the PDQ fixture photos (benign: bridges, everyday scenes).
pub fn photos(fixtures: &Path) -> Vec<RgbImage> {
    let dir = fixtures.join("pdq/images/bridge-mods");
    let mut out = Vec::new();
    for name in ["aaa-orig.jpg", "high-contrast.jpg", "blur-a-little.jpg"] {
        let p: PathBuf = dir.join(name);
        let img = image::open(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()));
        out.push(img.to_rgb8());
    }
    for name in ["misc/letterboxed_sample-b.jpg", "misc/pen-and-coaster.png"] {
        let p = fixtures.join("pdq/images").join(name);
        let img = image::open(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()));
        out.push(img.to_rgb8());
    }
    out
}

fn over(dst: &mut RgbImage, src: &RgbaImage, ox: u32, oy: u32) {
    for (x, y, p) in src.enumerate_pixels() {
        let (dx, dy) = (ox + x, oy + y);
        if dx >= dst.width() || dy >= dst.height() {
            continue;
        }
        let a = u32::from(p[3]);
        if a == 0 {
            continue;
        }
        let d = dst.get_pixel_mut(dx, dy);
        for c in 0..3 {
            d[c] = ((u32::from(p[c]) * a + u32::from(d[c]) * (255 - a)) / 255) as u8;
        }
    }
}

/// The card as JPEG bytes.
pub fn render_card(text: &str, lang: Lang, d: &Design, photos: &[RgbImage], tmp: &Path) -> Vec<u8> {
    let margin = 48u32;
    let logo_h = if d.logo { 90 } else { 0 };
    // Text colour against the background.
    let (bg_luma, panel) = match &d.background {
        Background::Plain(c) => (luma(*c), false),
        Background::Gradient(a, b) => ((luma(*a) + luma(*b)) / 2, false),
        Background::Photo(_) => (255, true),
    };
    let dark_text = bg_luma > 110;
    let fg = if dark_text { "#141414" } else { "#f4f4f4" };
    let block = pango(text, lang, &d.font, d.size_pt, d.width, d.align, fg, tmp);
    let w = d.width + 2 * margin;
    let h = block.height() + 2 * margin + logo_h;
    let mut card = RgbImage::new(w, h);
    match &d.background {
        Background::Plain(c) => {
            for p in card.pixels_mut() {
                *p = Rgb(*c);
            }
        }
        Background::Gradient(a, b) => {
            for (x, y, p) in card.enumerate_pixels_mut() {
                let t = (x + y) as f32 / (w + h) as f32;
                let mix = |i: usize| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8;
                *p = Rgb([mix(0), mix(1), mix(2)]);
            }
        }
        Background::Photo(i) => {
            let photo = &photos[*i % photos.len().max(1)];
            let scaled =
                image::imageops::resize(photo, w, h, image::imageops::FilterType::Triangle);
            card = scaled;
        }
    }
    if panel {
        // A light panel behind the text, as claim cards do on photos.
        for y in logo_h + margin / 2..h - margin / 2 {
            for x in margin / 2..w - margin / 2 {
                let p = card.get_pixel_mut(x, y);
                for c in 0..3 {
                    p[c] = ((u32::from(p[c]) + 3 * 245) / 4) as u8;
                }
            }
        }
    }
    if d.logo {
        // A coloured bar with a round emblem and a name, at the top.
        for y in 10..logo_h - 10 {
            for x in 10..w - 10 {
                card.put_pixel(x, y, Rgb([150, 20, 30]));
            }
        }
        let (cx, cy, r) = (60i64, i64::from(logo_h) / 2, 28i64);
        for y in 0..i64::from(logo_h) {
            for x in 0..120i64 {
                if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                    card.put_pixel(x as u32, y as u32, Rgb([245, 200, 40]));
                }
            }
        }
        let name = if lang == Lang::Ar {
            "نشرة الأخبار"
        } else {
            "DAILY BULLETIN"
        };
        let label = pango(
            name,
            lang,
            "DejaVu Sans Bold",
            20,
            w / 2,
            "left",
            "#ffffff",
            tmp,
        );
        over(
            &mut card,
            &label,
            110,
            logo_h / 2 - label.height().min(logo_h) / 2,
        );
    }
    over(&mut card, &block, margin, logo_h + margin);
    let mut out = Vec::new();
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, d.quality);
    card.write_with_encoder(enc)
        .unwrap_or_else(|e| panic!("jpeg: {e}"));
    out
}

/// The same card as a lossless PNG (for character error rate on clean renders).
pub fn render_clean(text: &str, lang: Lang, font: &str, tmp: &Path) -> Vec<u8> {
    let d = Design {
        font: font.to_string(),
        size_pt: 24,
        width: 960,
        align: if lang == Lang::Ar { "right" } else { "left" },
        background: Background::Plain([255, 255, 255]),
        logo: false,
        quality: 100,
    };
    let block = pango(
        text, lang, &d.font, d.size_pt, d.width, d.align, "#000000", tmp,
    );
    let (w, h) = (block.width() + 96, block.height() + 96);
    let mut card = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    over(&mut card, &block, 48, 48);
    let mut out = Vec::new();
    card.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap_or_else(|e| panic!("png: {e}"));
    out
}

/// Character error rate: Levenshtein distance over characters of the
/// whitespace-collapsed texts, divided by the reference length.
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| -> Vec<char> {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !matches!(c, '\u{200e}' | '\u{200f}'))
            .collect()
    };
    let (a, b) = (norm(reference), norm(hypothesis));
    if a.is_empty() {
        return if b.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()] as f64 / a.len() as f64
}
