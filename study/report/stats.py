"""The statistics the reports print: OLS with its confidence band, % changes,
Wilson intervals for shares, and bootstrap intervals for a line's slope and r."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class LinearFit:
    """y = intercept + slope x by ordinary least squares, with Pearson r and its p-value."""

    n: int
    slope: float
    intercept: float
    pearson_r: float
    p_value: float  # two-sided, H0: slope = 0 (the same test as for r = 0)
    slope_ci_low: float
    slope_ci_high: float
    residual_std: float
    x_mean: float
    x_sum_squares: float  # sum (x - mean x)^2

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * np.asarray(x, dtype=float)

    def band(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """95 % confidence band of the fitted mean at x."""
        x = np.asarray(x, dtype=float)
        half = _t_critical(self.n - 2) * self.residual_std * np.sqrt(1 / self.n + (x - self.x_mean) ** 2 / self.x_sum_squares)
        centre = self.predict(x)
        return centre - half, centre + half

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _t_critical(degrees_of_freedom: int) -> float:
    """Student's t for a two-sided CONFIDENCE interval."""
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, degrees_of_freedom))


def mean_interval_half_width(std: float, n: float) -> float:
    """Half the width of the Student-t CONFIDENCE interval of a mean of n values with sample std `std`
    (NaN below two values)."""
    if not n >= 2 or not np.isfinite(std):
        return float("nan")
    return _t_critical(int(n) - 1) * float(std) / math.sqrt(n)


def fit_line(x: Sequence[float], y: Sequence[float]) -> LinearFit:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3:
        raise ValueError(f"a line fit with a p-value needs at least 3 points, got {n}")
    x_mean, y_mean = x.mean(), y.mean()
    sxx = float(((x - x_mean) ** 2).sum())
    if sxx == 0:
        raise ValueError("a line fit needs at least two different x values")
    syy = float(((y - y_mean) ** 2).sum())
    sxy = float(((x - x_mean) * (y - y_mean)).sum())
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    residuals = y - (intercept + slope * x)
    residual_std = math.sqrt(float((residuals**2).sum()) / (n - 2))
    slope_se = residual_std / math.sqrt(sxx)
    t_crit = _t_critical(n - 2)
    if slope_se == 0:  # a perfect line
        p_value = 0.0
    else:
        p_value = float(2 * stats.t.sf(abs(slope / slope_se), n - 2))
    return LinearFit(
        n=n,
        slope=slope,
        intercept=intercept,
        pearson_r=sxy / math.sqrt(sxx * syy) if syy > 0 else 0.0,
        p_value=p_value,
        slope_ci_low=slope - t_crit * slope_se,
        slope_ci_high=slope + t_crit * slope_se,
        residual_std=residual_std,
        x_mean=float(x_mean),
        x_sum_squares=sxx,
    )


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value."""
    result = stats.spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def percent_change(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """100 * mean_i (L_i^ref - L_i^other) / L_i^ref over the last axis.

    Positive: `other` has lower loss than the reference (it does better).
    """
    reference, other = np.asarray(reference, dtype=float), np.asarray(other, dtype=float)
    return 100.0 * ((reference - other) / reference).mean(axis=-1)


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval for a share successes / trials (Wilson 1927).

    centre = (k + z^2/2) / (n + z^2), half = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4);
    unlike the normal approximation it stays inside [0, 1] and is not empty at k = 0.
    """
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError(f"a share needs 0 <= successes <= trials and trials > 0, got {successes} of {trials}")
    z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
    k, n = float(successes), float(trials)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class BootstrapLine:
    """Percentile intervals of the OLS slope and Pearson r over resampled points."""

    resamples: int
    slope_low: float
    slope_high: float
    r_low: float
    r_high: float


def bootstrap_line(x: Sequence[float], y: Sequence[float], resamples: int = 2000, seed: int = 0) -> BootstrapLine:
    """Resample the (x, y) pairs with replacement; resamples with a single x value are skipped.

    The points are the unit of resampling: in Figure 4 a point is one weighting
    (its mean over seeds), so the interval says how much the line depends on
    which weightings were drawn.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        raise ValueError(f"a bootstrap of a line needs at least 3 points, got {len(x)}")
    rows = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    xs, ys = x[rows], y[rows]
    dx, dy = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
    usable = sxx > 0
    slopes = sxy[usable] / sxx[usable]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(syy[usable] > 0, sxy[usable] / np.sqrt(sxx[usable] * syy[usable]), 0.0)
    tail = 100 * (1 - CONFIDENCE) / 2
    slope_low, slope_high = np.percentile(slopes, [tail, 100 - tail])
    r_low, r_high = np.percentile(r, [tail, 100 - tail])
    return BootstrapLine(int(usable.sum()), float(slope_low), float(slope_high), float(r_low), float(r_high))


def _pearson_rows(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pearson r of each row's (x, y); NaN where x or y is constant."""
    dx, dy = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((sxx > 0) & (syy > 0), sxy / np.sqrt(sxx * syy), np.nan)


def bootstrap_r_difference(
    x_first: Sequence[float], x_second: Sequence[float], y: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """r(x_first, y) - r(x_second, y) and its paired bootstrap 95 % interval: the same points (rows) are
    resampled for both, so the interval is about which x explains y better, not about the points drawn."""
    x1, x2, y = (np.asarray(v, dtype=float) for v in (x_first, x_second, y))
    if len(y) < 3:
        raise ValueError(f"a bootstrap of a correlation needs at least 3 points, got {len(y)}")
    observed = float(_pearson_rows(x1[None], y[None])[0] - _pearson_rows(x2[None], y[None])[0])
    rows = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    differences = _pearson_rows(x1[rows], y[rows]) - _pearson_rows(x2[rows], y[rows])
    differences = differences[np.isfinite(differences)]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(differences, [tail, 100 - tail])
    return observed, float(low), float(high)
