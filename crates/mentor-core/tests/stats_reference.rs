//! Opt-in reference check of `mentor_core::stats` and the Wilson interval against statsmodels
//! and scipy on fixed cases. It builds its own virtual environment (target/stats-venv, from
//! PyPI) on first use:
//!
//!     cargo test -p mentor-core --test stats_reference -- --ignored

use mentor_core::score::wilson_interval;
use mentor_core::stats::{mcnemar_exact, t_975};
use std::path::PathBuf;
use std::process::Command;

const SCRIPT: &str = r#"
import json, sys
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint
from scipy.stats import t
cases = json.loads(sys.argv[1])
out = {"mcnemar": [], "wilson": [], "t": []}
for b, c in cases["mcnemar"]:
    out["mcnemar"].append(float(mcnemar([[10, b], [c, 10]], exact=True).pvalue))
for k, n in cases["wilson"]:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    out["wilson"].append([float(lo), float(hi)])
for df in cases["t"]:
    out["t"].append(float(t.ppf(0.975, df)))
print(json.dumps(out))
"#;

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/stats-venv");
    let py = venv.join("bin/python");
    if !py.is_file() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap()
            .success();
        assert!(ok, "python3 -m venv failed");
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "statsmodels",
                "scipy",
                "numpy",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pip install statsmodels scipy failed");
    }
    py
}

#[test]
#[ignore = "builds a Python venv with statsmodels and scipy; run with --ignored"]
fn matches_statsmodels_and_scipy() {
    let mcnemar_cases: Vec<(usize, usize)> = vec![
        (0, 0),
        (5, 0),
        (0, 5),
        (1, 4),
        (10, 2),
        (3, 3),
        (1, 0),
        (17, 31),
        (60, 95),
        (400, 600),
    ];
    let wilson_cases: Vec<(usize, usize)> = vec![
        (0, 1),
        (1, 1),
        (1, 3),
        (7, 40),
        (50, 100),
        (89, 200),
        (0, 10),
        (10, 10),
        (613, 1000),
    ];
    let t_cases: Vec<usize> = (1..=40).chain([60, 100, 1000]).collect();
    let cases = serde_json::json!({
        "mcnemar": mcnemar_cases, "wilson": wilson_cases, "t": t_cases,
    });
    let out = Command::new(python())
        .args(["-c", SCRIPT, &cases.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, &(b, c)) in mcnemar_cases.iter().enumerate() {
        let w = want["mcnemar"][i].as_f64().unwrap();
        let got = mcnemar_exact(b, c);
        assert!(
            (got - w).abs() <= 1e-12 + 1e-9 * w,
            "McNemar b={b} c={c}: ours {got}, statsmodels {w}"
        );
    }
    for (i, &(k, n)) in wilson_cases.iter().enumerate() {
        let [lo, hi] = wilson_interval(k, n);
        let (wlo, whi) = (
            want["wilson"][i][0].as_f64().unwrap(),
            want["wilson"][i][1].as_f64().unwrap(),
        );
        assert!(
            (lo - wlo).abs() < 1e-9 && (hi - whi).abs() < 1e-9,
            "Wilson {k}/{n}: ours [{lo}, {hi}], statsmodels [{wlo}, {whi}]"
        );
    }
    for (i, &df) in t_cases.iter().enumerate() {
        let w = want["t"][i].as_f64().unwrap();
        let got = t_975(df);
        // tabled to df 30, the Cornish-Fisher expansion beyond
        let tol = if df <= 30 { 1e-8 } else { 1e-5 };
        assert!(
            (got - w).abs() < tol,
            "t(0.975, {df}): ours {got}, scipy {w}"
        );
    }
}
