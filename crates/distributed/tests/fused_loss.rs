//! The fused vocab-parallel loss on 1–3 ranks equals the single-process fused loss: the
//! loss, the hidden states' gradient (the same on every rank), each rank's rows of the
//! head's gradient, the log-sum-exp and the argmax, for plain and combined options.

use tokenloom_distributed::{
    DistributedError, ThreadGroup, VocabShard, linear_cross_entropy as parallel,
};
use tokenloom_embedding::functional::{
    CrossEntropyOptions, LinearCrossEntropyGrads, LogitScale, linear_cross_entropy,
};

const N: usize = 11;
const E: usize = 6;
const V: usize = 17;

fn inputs() -> (Vec<f64>, Vec<f64>, Vec<i64>, Vec<f64>) {
    let hidden = (0..N * E)
        .map(|i| ((i * 37 % 23) as f64 - 11.0) * 0.21)
        .collect();
    let head = (0..V * E)
        .map(|i| ((i * 53 % 31) as f64 - 15.0) * 0.13)
        .collect();
    let targets = vec![3, 16, -100, 0, 8, 8, 12, -100, 5, 1, 16];
    let weights = (0..N).map(|i| 0.5 + (i % 4) as f64 * 0.25).collect();
    (hidden, head, targets, weights)
}

fn cases() -> Vec<(CrossEntropyOptions, bool)> {
    let plain = CrossEntropyOptions::default();
    let mut all = CrossEntropyOptions::default();
    all.label_smoothing = 0.1;
    all.z_loss = 1e-3;
    all.logit_scale = LogitScale::Divide(1.5);
    all.softcap = Some(3.0);
    all.chunk_tokens = Some(4);
    let mut mult = CrossEntropyOptions::default();
    mult.logit_scale = LogitScale::Multiply(0.75);
    mult.chunk_tokens = Some(3);
    mult.label_smoothing = 0.05;
    vec![(plain, false), (all, true), (mult, false)]
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn vocab_parallel_equals_single_process_on_one_to_three_ranks() {
    let (hidden, head, targets, weights) = inputs();
    for (case, (mut options, weighted)) in cases().into_iter().enumerate() {
        options.return_lse = true;
        options.return_argmax = true;
        let weights = weighted.then_some(&weights[..]);
        let (mut gh, mut gw) = (vec![0.0; N * E], vec![0.0; V * E]);
        let grads = LinearCrossEntropyGrads::new()
            .with_hidden((&mut gh[..], [N, E]))
            .unwrap()
            .with_head((&mut gw[..], [V, E]))
            .unwrap()
            .grad_scale(0.75);
        let single = linear_cross_entropy(
            (&hidden[..], [N, E]),
            (&head[..], [V, E]),
            (&targets[..], [N]),
            weights,
            &options,
            Some(grads),
        )
        .unwrap();
        for n_ranks in 1..=3 {
            let results = ThreadGroup::run(n_ranks, |comm| {
                let shard =
                    VocabShard::new(V, tokenloom_distributed::Communicator::rank(&comm), n_ranks)
                        .unwrap();
                let rows = &head[shard.start() * E..shard.end() * E];
                let (mut gh, mut gw) = (vec![0.0; N * E], vec![0.0; shard.len() * E]);
                let grads = LinearCrossEntropyGrads::new()
                    .with_hidden((&mut gh[..], [N, E]))
                    .unwrap()
                    .with_head((&mut gw[..], [shard.len(), E]))
                    .unwrap()
                    .grad_scale(0.75);
                let out = parallel(
                    &comm,
                    shard,
                    (&hidden[..], [N, E]),
                    (rows, [shard.len(), E]),
                    (&targets[..], [N]),
                    weights,
                    &options,
                    Some(grads),
                )
                .unwrap();
                (shard, out, gh, gw)
            })
            .unwrap();
            for (shard, out, rank_gh, rank_gw) in &results {
                let what = format!("case {case}, {n_ranks} ranks, rank {}", shard.rank());
                assert!(
                    (out.loss - single.loss).abs() <= 1e-12 * single.loss.abs(),
                    "{what}: {} vs {}",
                    out.loss,
                    single.loss
                );
                assert_eq!(out.n_targets, single.n_targets, "{what}");
                assert_eq!(out.argmax, single.argmax, "{what}");
                assert!(
                    rel(out.lse.as_ref().unwrap(), single.lse.as_ref().unwrap()) <= 1e-12,
                    "{what}"
                );
                assert!(rel(rank_gh, &gh) <= 1e-12, "{what}: grad_hidden");
                assert!(
                    rel(rank_gw, &gw[shard.start() * E..shard.end() * E]) <= 1e-12,
                    "{what}: grad_head rows {}..{}",
                    shard.start(),
                    shard.end()
                );
                // Every rank has the same bits.
                assert_eq!(out.loss.to_bits(), results[0].1.loss.to_bits(), "{what}");
                assert!(rank_gh == &results[0].2, "{what}");
            }
        }
    }
}

#[test]
fn ranks_with_different_targets_or_options_are_an_error() {
    let (hidden, head, targets, _) = inputs();
    let results = ThreadGroup::run(2, |comm| {
        let rank = tokenloom_distributed::Communicator::rank(&comm);
        let shard = VocabShard::new(V, rank, 2).unwrap();
        let mut mine = targets.clone();
        if rank == 1 {
            mine[0] = 4;
        }
        let rows = &head[shard.start() * E..shard.end() * E];
        let different_targets = parallel(
            &comm,
            shard,
            (&hidden[..], [N, E]),
            (rows, [shard.len(), E]),
            (&mine[..], [N]),
            None,
            &CrossEntropyOptions::default(),
            None,
        );
        let mut options = CrossEntropyOptions::default();
        options.label_smoothing = if rank == 0 { 0.0 } else { 0.1 };
        let different_options = parallel(
            &comm,
            shard,
            (&hidden[..], [N, E]),
            (rows, [shard.len(), E]),
            (&targets[..], [N]),
            None,
            &options,
            None,
        );
        (different_targets, different_options)
    })
    .unwrap();
    for (targets, options) in results {
        assert!(
            matches!(
                targets,
                Err(DistributedError::NotReplicated { what: "targets" })
            ),
            "{targets:?}"
        );
        assert!(
            matches!(
                options,
                Err(DistributedError::ConfigMismatch {
                    field: "options",
                    ..
                })
            ),
            "{options:?}"
        );
    }
}
