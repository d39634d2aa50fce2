//! The step grid: evaluation times and which steps a sample's timestamp falls into.

use std::ops::RangeInclusive;

use super::EvalParams;
use crate::{Error, Result};

/// Loki's `max_resolution`: 11,000 points per series. The HTTP layer checks it on the
/// request; aligning start and end to the step can add two more points.
const MAX_POINTS: i128 = 11_000 + 2;

/// Evaluation times `start, start + step, …` (nanoseconds), `len` of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    start: i64,
    step: i64,
    len: usize,
}

impl Grid {
    pub(crate) fn new(params: &EvalParams) -> Result<Grid> {
        if params.instant {
            return Ok(Grid {
                start: params.start,
                step: 1,
                len: 1,
            });
        }
        if params.step <= 0 {
            return Err(Error::Query(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if params.end < params.start {
            return Ok(Grid {
                start: params.start,
                step: params.step,
                len: 0,
            });
        }
        let points =
            (i128::from(params.end) - i128::from(params.start)) / i128::from(params.step) + 1;
        if points > MAX_POINTS {
            return Err(Error::Query(
                "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
                    .into(),
            ));
        }
        Ok(Grid {
            start: params.start,
            step: params.step,
            len: usize::try_from(points).unwrap_or(0),
        })
    }

    /// Number of steps.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The evaluation time of step `i`, in nanoseconds.
    pub(crate) fn time(&self, i: usize) -> i64 {
        self.start
            .saturating_add(self.step.saturating_mul(i as i64))
    }

    /// The time span a range aggregation must read: samples in `(from, to]` can land in
    /// some step's window `(t − range − offset, t − offset]`.
    pub(crate) fn span(&self, range: i64, offset: i64) -> (i64, i64) {
        let last = self.time(self.len.saturating_sub(1));
        (
            self.start.saturating_sub(range).saturating_sub(offset),
            last.saturating_sub(offset),
        )
    }

    /// The steps whose window `(t − range − offset, t − offset]` contains `ts`.
    pub(crate) fn steps_for(
        &self,
        ts: i64,
        range: i64,
        offset: i64,
    ) -> Option<RangeInclusive<usize>> {
        if self.len == 0 || range <= 0 {
            return None;
        }
        // Shift the sample onto step time: the window becomes (t − range, t].
        // t ≥ u  ⇔  i ≥ ceil((u − start) / step);  t < u + range  ⇔  i ≤ floor((u + range − 1 − start) / step)
        let fast = ts.checked_add(offset).and_then(|u| {
            let lo_num = self.start.checked_sub(u)?;
            let hi_num = u
                .checked_add(range)?
                .checked_sub(1)?
                .checked_sub(self.start)?;
            Some((
                -(lo_num.div_euclid(self.step)) as i128,
                hi_num.div_euclid(self.step) as i128,
            ))
        });
        let (lo, hi) = fast.unwrap_or_else(|| {
            // Extreme timestamps or offsets: redo it without overflow.
            let u = i128::from(ts) + i128::from(offset);
            let start = i128::from(self.start);
            let step = i128::from(self.step);
            (
                -((start - u).div_euclid(step)),
                (u + i128::from(range) - 1 - start).div_euclid(step),
            )
        });
        let lo = lo.max(0);
        let hi = hi.min(self.len as i128 - 1);
        if lo > hi {
            return None;
        }
        Some(lo as usize..=hi as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn grid(start: i64, end: i64, step: i64) -> Grid {
        Grid::new(&EvalParams {
            start,
            end,
            step,
            instant: false,
            max_series: 0,
        })
        .unwrap()
    }

    #[test]
    fn window_excludes_lower_bound_and_includes_upper() {
        // steps at 60s, 90s, 120s with a [30s] window
        let g = grid(60 * S, 120 * S, 30 * S);
        assert_eq!(g.len(), 3);
        assert_eq!(g.steps_for(60 * S, 30 * S, 0), Some(0..=0));
        assert_eq!(g.steps_for(30 * S, 30 * S, 0), None);
        assert_eq!(g.steps_for(30 * S + 1, 30 * S, 0), Some(0..=0));
        assert_eq!(g.steps_for(61 * S, 30 * S, 0), Some(1..=1));
        assert_eq!(g.steps_for(120 * S, 30 * S, 0), Some(2..=2));
        assert_eq!(g.steps_for(120 * S + 1, 30 * S, 0), None);
    }

    #[test]
    fn overlapping_windows_cover_several_steps() {
        let g = grid(60 * S, 180 * S, 30 * S);
        assert_eq!(g.steps_for(61 * S, 60 * S, 0), Some(1..=2));
        assert_eq!(g.steps_for(5 * S, 60 * S, 0), Some(0..=0));
    }

    #[test]
    fn gaps_between_windows_hit_no_step() {
        // [10s] windows every 30s: (50,60], (80,90]
        let g = grid(60 * S, 90 * S, 30 * S);
        assert_eq!(g.steps_for(70 * S, 10 * S, 0), None);
        assert_eq!(g.steps_for(85 * S, 10 * S, 0), Some(1..=1));
    }

    #[test]
    fn offset_shifts_the_window_back() {
        // step at 90s, [20s] offset 90s reads (-20s, 0s]
        let g = grid(90 * S, 90 * S, S);
        assert_eq!(g.steps_for(0, 20 * S, 90 * S), Some(0..=0));
        assert_eq!(g.steps_for(-20 * S, 20 * S, 90 * S), None);
        assert_eq!(g.span(20 * S, 90 * S), (-20 * S, 0));
    }

    #[test]
    fn step_must_be_positive_and_points_capped() {
        let p = EvalParams {
            start: 0,
            end: 10,
            step: 0,
            instant: false,
            max_series: 0,
        };
        assert!(Grid::new(&p).is_err());
        let p = EvalParams {
            start: 0,
            end: 20_000 * S,
            step: S,
            instant: false,
            max_series: 0,
        };
        assert!(Grid::new(&p)
            .unwrap_err()
            .to_string()
            .starts_with("exceeded maximum resolution of 11,000 points"));
    }
}
