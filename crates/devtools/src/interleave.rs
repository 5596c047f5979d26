//! Timing contenders *interleaved*: every round runs each contender of a case once, in an
//! order shuffled between rounds, so that a slow phase of a shared machine (this
//! project's 2-vCPU VM drifts by ±10–20% over tens of seconds) hits all of them alike,
//! and no contender always follows the same one (a fixed rotation made a 2-thread kernel
//! that always ran after a 1-thread one pay for waking its pool: 1.3–1.6× on a 150 µs
//! copy).
//! Sequential benchmarks (criterion runs one function after the other) cannot give
//! ratios tighter than that drift; the ratios of `benches/vs_plain.rs` come from here.

use std::time::{Duration, Instant};

/// One call of a contender's operation, writing into the case's output buffer.
pub type Operation<'a> = Box<dyn FnMut(&mut [f32]) + 'a>;

/// One contender: a name and the operation, which writes into the case's output buffer.
pub struct Contender<'a> {
    /// Shown in the report (`tokenloom_t2`, `plain_t1`, …).
    pub name: String,
    /// One call of the operation.
    pub run: Operation<'a>,
}

impl<'a> Contender<'a> {
    /// A contender named `name` running `run`.
    pub fn new(name: impl Into<String>, run: impl FnMut(&mut [f32]) + 'a) -> Self {
        Self {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// The per-call time of one contender over the rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// The contender's name.
    pub name: String,
    /// Median over the rounds of the mean time per call in a sample.
    pub median: Duration,
    /// The fastest sample's time per call.
    pub min: Duration,
    /// The time per call of every sample, in round order: sample `r` of two contenders
    /// of one case ran in the same round, a few hundred milliseconds apart.
    pub samples: Vec<Duration>,
}

impl Timing {
    /// The median over the rounds of this contender's time per call divided by
    /// `baseline`'s in the same round: the machine's drift between rounds cancels out of
    /// each round's ratio, so a slow stretch that falls on more of one contender's rounds
    /// does not move it, as it moves the ratio of the two medians. `None` if the two did
    /// not run the same rounds.
    pub fn paired_ratio(&self, baseline: &Timing) -> Option<f64> {
        if self.samples.len() != baseline.samples.len() || self.samples.is_empty() {
            return None;
        }
        let mut ratios: Vec<f64> = self
            .samples
            .iter()
            .zip(&baseline.samples)
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        Some(ratios[ratios.len() / 2])
    }
}

/// Runs every contender `rounds` times, interleaved in shuffled order, each sample lasting at least
/// `sample` (calls per sample are calibrated once, on the slowest contender's first
/// call), all writing into `out`. Returns one [`Timing`] per contender, in their order.
///
/// # Panics
///
/// If `contenders` is empty or `rounds` is zero.
pub fn time_interleaved(
    contenders: &mut [Contender<'_>],
    out: &mut [f32],
    rounds: usize,
    sample: Duration,
) -> Vec<Timing> {
    assert!(
        !contenders.is_empty() && rounds > 0,
        "nothing to time: {} contenders, {rounds} rounds",
        contenders.len()
    );
    // Warm up (page faults, pools, caches) and calibrate on the slowest.
    let mut slowest = Duration::ZERO;
    for c in contenders.iter_mut() {
        (c.run)(out);
        let start = Instant::now();
        (c.run)(out);
        slowest = slowest.max(start.elapsed());
    }
    let calls = (sample.as_nanos() / slowest.as_nanos().max(1)).clamp(1, 1 << 24) as u32;
    let n = contenders.len();
    let mut samples = vec![Vec::with_capacity(rounds); n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = 0x853C_49E6_748F_EA9Bu64;
    for _ in 0..rounds {
        // A Fisher–Yates shuffle from a fixed-seed LCG: reproducible, no dependency.
        for k in (1..n).rev() {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            order.swap(k, (state >> 33) as usize % (k + 1));
        }
        for &i in &order {
            let start = Instant::now();
            for _ in 0..calls {
                (contenders[i].run)(out);
            }
            samples[i].push(start.elapsed() / calls);
        }
    }
    contenders
        .iter()
        .zip(samples)
        .map(|(c, samples)| {
            let mut sorted = samples.clone();
            sorted.sort();
            Timing {
                name: c.name.clone(),
                median: sorted[sorted.len() / 2],
                min: sorted[0],
                samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_contender_measures_slower_and_every_contender_runs() {
        let (mut fast_calls, mut slow_calls) = (0u64, 0u64);
        let mut contenders = vec![
            Contender::new("fast", |out: &mut [f32]| {
                out[0] += 1.0;
                fast_calls += 1;
            }),
            Contender::new("slow", |out: &mut [f32]| {
                std::thread::sleep(Duration::from_micros(200));
                out[1] += 1.0;
                slow_calls += 1;
            }),
        ];
        let mut out = [0.0f32; 2];
        let t = time_interleaved(&mut contenders, &mut out, 5, Duration::from_millis(2));
        drop(contenders);
        assert_eq!(t[0].name, "fast");
        assert!(t[1].median >= Duration::from_micros(200), "{t:?}");
        assert!(t[0].median < t[1].median, "{t:?}");
        assert!(t[0].min <= t[0].median && t[1].min <= t[1].median);
        assert!(fast_calls > 5 && slow_calls > 5);
        assert_eq!(f64::from(out[0]), fast_calls as f64);
    }

    fn timing(name: &str, micros: &[u64]) -> Timing {
        let samples: Vec<Duration> = micros.iter().map(|&m| Duration::from_micros(m)).collect();
        let mut sorted = samples.clone();
        sorted.sort();
        Timing {
            name: name.into(),
            median: sorted[sorted.len() / 2],
            min: sorted[0],
            samples,
        }
    }

    #[test]
    fn the_paired_ratio_divides_round_by_round() {
        // The machine drifts 5× over the rounds; each round, `a` takes 1.1× `b`.
        let a = timing("a", &[110, 220, 330, 440, 550]);
        let b = timing("b", &[100, 200, 300, 400, 500]);
        let paired = a.paired_ratio(&b).expect("same rounds");
        assert!((paired - 1.1).abs() < 1e-9, "{paired}");
        // Paired the other way round, each round's ratio is 1/1.1.
        let back = b.paired_ratio(&a).expect("same rounds");
        assert!((back - 1.0 / 1.1).abs() < 1e-9, "{back}");
        // Shuffle `b`'s rounds: the medians (and their ratio) stay, the paired ratio moves.
        let shuffled = timing("b", &[200, 300, 400, 500, 100]);
        assert_eq!(shuffled.median, b.median);
        let unpaired = a.paired_ratio(&shuffled).expect("same rounds");
        assert!((unpaired - 1.1).abs() > 0.1, "{unpaired}");
        assert_eq!(a.paired_ratio(&timing("c", &[100, 200])), None);
    }
}
