"""Baselines for scripts/nab-speed.sh: score every row of each NAB file and
print rows per second over all of them (reading the CSVs included).

  hst     River's HalfSpaceTrees (min-max scaled), score_one then learn_one per row
  zscore  pandas rolling z-score over 200 rows (vectorised)
"""
import sys
import time


def hst(path):
    import csv
    from river import anomaly, compose, preprocessing

    model = compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
    n = 0
    with open(path) as f:
        for row in csv.DictReader(f):
            x = {"value": float(row["value"])}
            model.score_one(x)
            model.learn_one(x)
            n += 1
    return n


def zscore(path):
    import pandas as pd

    df = pd.read_csv(path)
    v = df["value"]
    roll = v.rolling(200, min_periods=2)
    score = ((v - roll.mean()) / roll.std()).abs()
    score.to_numpy()
    return len(df)


def main():
    kind, files = sys.argv[1], sys.argv[2:]
    run = {"hst": hst, "zscore": zscore}[kind]
    start = time.perf_counter()
    rows = sum(run(f) for f in files)
    print(f"{rows / (time.perf_counter() - start):.0f}")


if __name__ == "__main__":
    main()
