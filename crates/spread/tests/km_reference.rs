//! Kaplan–Meier, median with CI and log-rank against Python `lifelines`
//! 0.30.3 on a fixed censored data set, to 1e-9.
//!
//! `tests/data/km_dataset.csv` (60 copies in two groups, ties at 1 h and
//! 24 h, 18 censored) is checked in with `tests/data/km_reference.json`,
//! written by `tests/data/km_reference.py` (run it to regenerate).

use echotrace_spread::survival::{logrank, KaplanMeier, Observation};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn dataset() -> Vec<(String, Observation)> {
    let text = std::fs::read_to_string(data_dir().join("km_dataset.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].to_string(),
                Observation {
                    time: f[2].parse().unwrap(),
                    event: f[3] == "1",
                },
            )
        })
        .collect()
}

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data_dir().join("km_reference.json")).unwrap())
        .unwrap()
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{what}: got {got:.15}, lifelines {want:.15}"
    );
}

fn close_opt(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (Some(g), Some(w)) => close(what, g, w),
        (None, None) => {}
        other => panic!("{what}: got {:?}, lifelines {want}", other.0),
    }
}

fn check_fit(name: &str, obs: &[Observation], want: &Value) {
    let km = KaplanMeier::fit(obs).unwrap();
    assert_eq!(km.n(), want["n"].as_u64().unwrap(), "{name} n");
    assert_eq!(
        km.total_events(),
        want["events"].as_u64().unwrap(),
        "{name} events"
    );
    let times: Vec<f64> = want["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(km.times.len(), times.len(), "{name} timeline length");
    for (i, t) in times.iter().enumerate() {
        close(&format!("{name} t[{i}]"), km.times[i], *t);
        for (field, got) in [
            ("survival", km.survival[i]),
            ("ci_lower", km.ci_lower[i]),
            ("ci_upper", km.ci_upper[i]),
        ] {
            close(
                &format!("{name} {field}[{i}] at t={t}"),
                got,
                want[field][i].as_f64().unwrap(),
            );
        }
    }
    let m = km.median();
    close_opt(&format!("{name} median"), m.median, &want["median"]);
    close_opt(
        &format!("{name} median CI lower"),
        m.lower,
        &want["median_ci_lower"],
    );
    close_opt(
        &format!("{name} median CI upper"),
        m.upper,
        &want["median_ci_upper"],
    );
    for h in ["1", "24", "168"] {
        close(
            &format!("{name} S({h} h)"),
            km.survival_at(h.parse().unwrap()),
            want["survival_at"][h].as_f64().unwrap(),
        );
    }
}

#[test]
fn kaplan_meier_matches_lifelines() {
    let data = dataset();
    let r = reference();
    assert_eq!(r["lifelines_version"], "0.30.3");
    let all: Vec<Observation> = data.iter().map(|d| d.1).collect();
    check_fit("all", &all, &r["all"]);
    for g in ["A", "B"] {
        let sub: Vec<Observation> = data.iter().filter(|d| d.0 == g).map(|d| d.1).collect();
        check_fit(g, &sub, &r[g]);
    }
}

#[test]
fn logrank_matches_lifelines() {
    let data = dataset();
    let r = reference();
    let a: Vec<Observation> = data.iter().filter(|d| d.0 == "A").map(|d| d.1).collect();
    let b: Vec<Observation> = data.iter().filter(|d| d.0 == "B").map(|d| d.1).collect();
    let lr = logrank(&a, &b).unwrap();
    close(
        "log-rank statistic",
        lr.statistic,
        r["logrank_A_vs_B"]["statistic"].as_f64().unwrap(),
    );
    close(
        "log-rank p",
        lr.p_value,
        r["logrank_A_vs_B"]["p_value"].as_f64().unwrap(),
    );
}
