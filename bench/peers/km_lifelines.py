#!/usr/bin/env python3
"""Peer of `spread km`: lifelines on the same CSV (group,hours,removed).

Times KaplanMeierFitter.fit + median CI and logrank_test (group 0 vs 1),
median of 5 runs each, and prints one JSON line like the Rust harness.
"""
import json
import sys
import time

import numpy as np
import pandas as pd
import lifelines
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import median_survival_times

df = pd.read_csv(sys.argv[1])
t = df["hours"].to_numpy()
e = df["removed"].to_numpy()
g = df["group"].to_numpy()
fits, lrs = [], []
for _ in range(5):
    t0 = time.perf_counter()
    k = KaplanMeierFitter().fit(t, event_observed=e)
    med = k.median_survival_time_
    ci = median_survival_times(k.confidence_interval_)
    fits.append(time.perf_counter() - t0)
    t1 = time.perf_counter()
    r = logrank_test(t[g == 0], t[g == 1], event_observed_A=e[g == 0], event_observed_B=e[g == 1])
    lrs.append(time.perf_counter() - t1)
fits.sort()
lrs.sort()


def num(x):
    x = float(x)
    return None if np.isinf(x) else x


print(json.dumps({"bench": "km", "impl": "lifelines " + lifelines.__version__, "n": len(df),
                  "timeline": len(k.timeline), "fit_median_seconds": fits[2],
                  "logrank_median_seconds": lrs[2], "median": num(med),
                  "median_ci": [num(ci.iloc[0, 0]), num(ci.iloc[0, 1])],
                  "logrank_statistic": float(r.test_statistic)}))
