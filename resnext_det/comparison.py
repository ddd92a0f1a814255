"""Statistics of a comparison repeated over seeds: per-backbone mean and spread of each metric, and the
difference between two backbones paired by seed (runs with the same seed share the data order)."""
import math
import statistics
from typing import Dict, List, Optional, Sequence

__all__ = ["group_runs", "metric_summary", "paired_difference", "t_quantile"]

# Two-sided 95% quantiles of Student's t distribution for 1..30 degrees of freedom (standard tables).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def t_quantile(degrees_of_freedom: int) -> float:
    """The 97.5% quantile of t with that many degrees of freedom (the normal's 1.96 beyond 30)."""
    if degrees_of_freedom < 1:
        raise ValueError("a t interval needs at least 2 values")
    return _T95[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T95) else 1.960


def group_runs(rows: Sequence[dict], key: str = "arch") -> Dict[str, List[dict]]:
    """Rows grouped by ``row[key]``, groups in order of first appearance."""
    groups: Dict[str, List[dict]] = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    return groups


def _spread(values: List[float]) -> dict:
    """n, mean, sample standard deviation, min, max and the 95% t interval half-width of the mean."""
    n = len(values)
    std = statistics.stdev(values) if n > 1 else None
    return {"n": n, "mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values),
            "ci95": t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else None}


def _has(run: dict, metric: str) -> bool:
    value = run.get(metric)
    return value is not None and value == value  # not None, not NaN (e.g. APl without large objects)


def metric_summary(runs: Sequence[dict], metric: str = "AP") -> Optional[dict]:
    """:func:`_spread` of ``metric`` over the ``runs`` that have a value; None if none has."""
    values = [r[metric] for r in runs if _has(r, metric)]
    return _spread(values) if values else None


def paired_difference(runs: Sequence[dict], baseline: Sequence[dict], metric: str = "AP") -> Optional[dict]:
    """``metric`` of ``runs`` minus ``baseline``'s, paired by ``seed``: the spread of the per-seed
    differences (their mean, standard deviation and 95% t interval) and the seeds used. None if no
    seed is in both."""
    base = {r["seed"]: r[metric] for r in baseline if _has(r, metric)}
    by_seed = {r["seed"]: r[metric] for r in runs if _has(r, metric)}
    seeds = [s for s in by_seed if s in base]
    if not seeds:
        return None
    result = _spread([by_seed[s] - base[s] for s in seeds])
    result["seeds"] = seeds
    return result
