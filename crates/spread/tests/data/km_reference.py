#!/usr/bin/env python3
"""Reference values for crates/spread/tests/km_reference.rs, from lifelines.

Reads km_dataset.csv (id, group, hours, removed) and writes km_reference.json:
for all rows, group A and group B, the Kaplan-Meier timeline, survival
function, 95 % confidence band (lifelines' default: exponential Greenwood),
median with its CI (median_survival_times of the band), S at 1 h / 24 h /
168 h; and the log-rank test A vs B.

Reproduce:
    python3 -m venv /tmp/ll && /tmp/ll/bin/pip install lifelines==0.30.3
    /tmp/ll/bin/python km_reference.py
"""
import csv
import json
import math
import os

import lifelines
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times

here = os.path.dirname(os.path.abspath(__file__))
rows = list(csv.DictReader(open(os.path.join(here, "km_dataset.csv"))))


def num(x):
    x = float(x)
    return None if math.isinf(x) else x


def fit(subset):
    t = [float(r["hours"]) for r in subset]
    e = [int(r["removed"]) for r in subset]
    kmf = KaplanMeierFitter().fit(t, event_observed=e)
    ci = kmf.confidence_interval_
    med_ci = median_survival_times(ci)
    return {
        "n": len(subset),
        "events": sum(e),
        "timeline": [float(x) for x in kmf.timeline],
        "survival": [float(x) for x in kmf.survival_function_.iloc[:, 0]],
        "ci_lower": [float(x) for x in ci.iloc[:, 0]],
        "ci_upper": [float(x) for x in ci.iloc[:, 1]],
        "median": num(kmf.median_survival_time_),
        "median_ci_lower": num(med_ci.iloc[0, 0]),
        "median_ci_upper": num(med_ci.iloc[0, 1]),
        "survival_at": {
            str(h): float(kmf.survival_function_at_times(h).iloc[0]) for h in (1, 24, 168)
        },
    }


a = [r for r in rows if r["group"] == "A"]
b = [r for r in rows if r["group"] == "B"]
lr = logrank_test(
    [float(r["hours"]) for r in a],
    [float(r["hours"]) for r in b],
    event_observed_A=[int(r["removed"]) for r in a],
    event_observed_B=[int(r["removed"]) for r in b],
)
out = {
    "lifelines_version": lifelines.__version__,
    "all": fit(rows),
    "A": fit(a),
    "B": fit(b),
    "logrank_A_vs_B": {"statistic": float(lr.test_statistic), "p_value": float(lr.p_value)},
}
with open(os.path.join(here, "km_reference.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("wrote km_reference.json")
