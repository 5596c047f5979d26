//! The layers against one process: forward, backward, the optimizer step, the heads.

use rand::Rng;
use tokenloom_embedding::{AdamW, EmbeddingOptions, functional};
use tokenloom_tensor::{Accumulate, Element, Tensor};

use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::head::VocabParallelHead;

use super::*;

pub(super) fn forward<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let mut table = full_table::<T>(1);
    // Row 5: negative zeros and a NaN with a payload, which a summing all-reduce would
    // change; they must arrive bit for bit.
    for (i, v) in table[5 * N_EMBD..6 * N_EMBD].iter_mut().enumerate() {
        *v = if i == 3 {
            T::from_bits64(T::from_f64_lossy(f64::NAN).to_bits64() | 1)
        } else {
            T::from_f64_lossy(-0.0)
        };
    }
    let mut ids = ids(3, 11, 2);
    ids[7] = 5;
    let emb = VocabParallelEmbedding::from_full(
        comm,
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        EmbeddingOptions::default(),
    )?;
    let expected = functional::lookup(
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        (&ids[..], [3, 11]),
        None,
    )?;
    let got = emb.forward(comm, (&ids[..], [3, 11]))?;
    report.check(
        got.dims() == [3, 11, N_EMBD] && same_bits(got.as_slice(), expected.as_slice()),
        || {
            format!(
                "forward {:?}: output differs from the single-process lookup",
                T::DTYPE
            )
        },
    );
    // The same ids as i64, one sequence.
    let ids64: Vec<i64> = ids[..11].iter().map(|&i| i64::from(i)).collect();
    let got = emb.forward(comm, &ids64[..])?;
    report.check(
        same_bits(got.as_slice(), &expected.as_slice()[..11 * N_EMBD]),
        || format!("forward {:?} with i64 ids differs", T::DTYPE),
    );
    Ok(())
}

pub(super) fn backward<C: Communicator + ?Sized>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let table = full_table::<f32>(3);
    let ids = ids(4, 9, 4);
    let grad_out = {
        let mut rng = rng(5);
        (0..ids.len() * N_EMBD)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>()
    };
    for (padding_idx, scale_grad_by_freq) in [
        (None, false),
        (Some(ids[2] as usize), true),
        (Some(VOCAB_SIZE - 1), false),
    ] {
        let options = EmbeddingOptions {
            padding_idx,
            max_norm: None,
            scale_grad_by_freq,
            ..EmbeddingOptions::default()
        };
        let mut emb =
            VocabParallelEmbedding::from_full(comm, (&table[..], [VOCAB_SIZE, N_EMBD]), options)?;
        let mut expected = vec![0.0f32; VOCAB_SIZE * N_EMBD];
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            functional::backward_dense(
                (&ids[..], [4, 9]),
                (&grad_out[..], [4, 9, N_EMBD]),
                (&mut expected[..], [VOCAB_SIZE, N_EMBD]),
                &options,
                accumulate,
            )?;
            emb.backward(
                comm,
                (&ids[..], [4, 9]),
                (&grad_out[..], [4, 9, N_EMBD]),
                accumulate,
            )?;
            report.check(
                same_bits(
                    emb.grad().as_slice(),
                    shard_rows(&expected, emb.shard(), N_EMBD),
                ),
                || {
                    format!(
                        "backward ({options:?}, {accumulate:?}): rows {:?} differ",
                        emb.shard().range()
                    )
                },
            );
        }
    }
    Ok(())
}

pub(super) fn optimizer<C: Communicator + ?Sized>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let mut table = full_table::<f32>(6);
    let ids = ids(2, 13, 7);
    let grad_out: Vec<f32> = (0..ids.len() * N_EMBD)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    let options = EmbeddingOptions {
        padding_idx: Some(ids[5] as usize),
        ..EmbeddingOptions::default()
    };
    let mut emb =
        VocabParallelEmbedding::from_full(comm, (&table[..], [VOCAB_SIZE, N_EMBD]), options)?;
    let (mut opt_shard, mut opt_full) = (AdamW::new(0.01), AdamW::new(0.01));
    let mut grad = vec![0.0f32; table.len()];
    for _ in 0..3 {
        emb.backward(
            comm,
            (&ids[..], [2, 13]),
            (&grad_out[..], [2, 13, N_EMBD]),
            Accumulate::Replace,
        )?;
        emb.step(&mut opt_shard)?;
        functional::backward_dense(
            (&ids[..], [2, 13]),
            (&grad_out[..], [2, 13, N_EMBD]),
            (&mut grad[..], [VOCAB_SIZE, N_EMBD]),
            &options,
            Accumulate::Replace,
        )?;
        functional::step_dense(
            &mut opt_full,
            (&mut table[..], [VOCAB_SIZE, N_EMBD]),
            (&grad[..], [VOCAB_SIZE, N_EMBD]),
            options.padding_idx,
        )?;
    }
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(&table, emb.shard(), N_EMBD),
        ),
        || "AdamW on the shard: rows differ from the single-process step".into(),
    );
    Ok(())
}

/// The single-process head: loss, weight gradient and hidden gradient, from the full
/// weight, with the cross-entropy in f64.
pub(super) fn reference_head<T: Element>(
    weight: &[T],
    hidden: &[T],
    targets: &[i64],
    logit_scale: f64,
) -> Result<(f64, Vec<T>, Vec<T>), DistributedError> {
    let rows = targets.len();
    let logits = functional::logits(
        (hidden, [rows, N_EMBD]),
        (weight, [VOCAB_SIZE, N_EMBD]),
        logit_scale,
    )?;
    let counted: Vec<usize> = (0..rows).filter(|&r| targets[r] >= 0).collect();
    let mut loss = 0.0;
    let mut grad_logits = vec![T::zero(); rows * VOCAB_SIZE];
    for &r in &counted {
        let row = &logits.as_slice()[r * VOCAB_SIZE..(r + 1) * VOCAB_SIZE];
        let m = row
            .iter()
            .map(|x| x.as_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|x| (x.as_f64() - m).exp()).sum();
        let t = targets[r] as usize;
        loss += s.ln() + m - row[t].as_f64();
        for (c, g) in grad_logits[r * VOCAB_SIZE..(r + 1) * VOCAB_SIZE]
            .iter_mut()
            .enumerate()
        {
            let p = (row[c].as_f64() - m).exp() / s;
            *g = T::from_f64_lossy((p - f64::from(u8::from(c == t))) / counted.len() as f64);
        }
    }
    let mut grad_weight = vec![T::zero(); weight.len()];
    let mut grad_hidden = vec![T::zero(); hidden.len()];
    functional::logits_backward(
        (hidden, [rows, N_EMBD]),
        (weight, [VOCAB_SIZE, N_EMBD]),
        (&grad_logits[..], [rows, VOCAB_SIZE]),
        logit_scale,
        (&mut grad_weight[..], [VOCAB_SIZE, N_EMBD]),
        (&mut grad_hidden[..], [rows, N_EMBD]),
    )?;
    Ok((loss / counted.len() as f64, grad_weight, grad_hidden))
}

pub(super) fn head<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    report: &mut Report,
    tolerance: f64,
) -> Result<(), DistributedError> {
    let table = full_table::<T>(8);
    let head_table = full_table::<T>(9);
    let hidden: Vec<T> = full_table::<T>(10)[..10 * N_EMBD].to_vec();
    let targets: Vec<i64> = vec![3, 36, 0, -100, 17, 17, 8, 29, -100, 1];
    for tied in [true, false] {
        let logit_scale = if tied { 0.5 } else { 1.0 };
        let mut emb = VocabParallelEmbedding::from_full(
            comm,
            (&table[..], [VOCAB_SIZE, N_EMBD]),
            EmbeddingOptions::default(),
        )?;
        let mut head = if tied {
            VocabParallelHead::tied(logit_scale)
        } else {
            let rows = shard_rows(&head_table, emb.shard(), N_EMBD).to_vec();
            let rows = Tensor::from_vec(rows, &[emb.shard().len(), N_EMBD])?;
            VocabParallelHead::untied(comm, &emb, rows, logit_scale)?
        };
        let weight = if tied { &table } else { &head_table };
        let (loss, grad_weight, grad_hidden) =
            reference_head(weight, &hidden, &targets, logit_scale)?;
        let only_loss = head.loss(comm, &emb, (&hidden[..], [10, N_EMBD]), &targets[..])?;
        let step =
            head.loss_and_backward(comm, &mut emb, (&hidden[..], [10, N_EMBD]), &targets[..])?;
        let what = if tied { "tied" } else { "untied" };
        let dtype = T::DTYPE;
        report.check(
            (step.loss - loss).abs() <= tolerance * loss.abs() && step.loss == only_loss,
            || {
                format!(
                    "{what} head {dtype:?}: loss {} vs single-process {loss}",
                    step.loss
                )
            },
        );
        let got_grad = if tied {
            emb.grad()
        } else {
            head.grad().unwrap_or(emb.grad())
        };
        let err = relative_error(
            got_grad.as_slice(),
            shard_rows(&grad_weight, emb.shard(), N_EMBD),
        );
        report.check(err <= tolerance, || {
            format!("{what} head {dtype:?}: weight gradient off by {err:e} relative")
        });
        let err = relative_error(step.grad_hidden.as_slice(), &grad_hidden);
        report.check(err <= tolerance, || {
            format!("{what} head {dtype:?}: hidden gradient off by {err:e} relative")
        });
    }
    Ok(())
}
