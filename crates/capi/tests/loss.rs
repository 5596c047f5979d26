//! `tokenloom_linear_cross_entropy` gives the library's numbers on the caller's buffers,
//! and refuses null, aliased and wrongly shaped arguments with a status.

use tokenloom_capi::{
    TOKENLOOM_MAX_RANK, TokenloomDtype, TokenloomStatus, TokenloomTensor,
    tokenloom_cross_entropy_options_default, tokenloom_linear_cross_entropy,
};
use tokenloom_embedding::functional::{
    CrossEntropyOptions, LinearCrossEntropyGrads, linear_cross_entropy,
};

fn desc<T>(buf: &mut [T], dtype: TokenloomDtype, dims: &[usize]) -> TokenloomTensor {
    let mut d = [0usize; TOKENLOOM_MAX_RANK];
    d[..dims.len()].copy_from_slice(dims);
    TokenloomTensor {
        data: buf.as_mut_ptr().cast(),
        dtype: dtype as i32,
        rank: dims.len(),
        dims: d,
    }
}

#[test]
fn the_c_api_matches_the_library() {
    let (n, e, v) = (5, 3, 7);
    let mut hidden: Vec<f32> = (0..n * e).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut head: Vec<f32> = (0..v * e).map(|i| (i as f32 * 0.91).cos()).collect();
    let mut targets: Vec<i64> = vec![3, -100, 0, 6, 2];
    let mut options = tokenloom_cross_entropy_options_default();
    options.label_smoothing = 0.1;
    options.softcap = 2.0;
    let (mut gh, mut gw) = (vec![0f32; n * e], vec![0f32; v * e]);
    let (mut lse, mut argmax) = (vec![0f64; n], vec![0u32; n]);
    let mut loss = 0.0f64;
    let (dh, dw, dt) = (
        desc(&mut hidden, TokenloomDtype::F32, &[n, e]),
        desc(&mut head, TokenloomDtype::F32, &[v, e]),
        desc(&mut targets, TokenloomDtype::I64, &[n]),
    );
    let (dgh, dgw) = (
        desc(&mut gh, TokenloomDtype::F32, &[n, e]),
        desc(&mut gw, TokenloomDtype::F32, &[v, e]),
    );
    let (dlse, dargmax) = (
        desc(&mut lse, TokenloomDtype::F64, &[n]),
        desc(&mut argmax, TokenloomDtype::U32, &[n]),
    );
    // SAFETY: every descriptor describes a live buffer of its shape; outputs are disjoint.
    let status = unsafe {
        tokenloom_linear_cross_entropy(
            &dh,
            &dw,
            &dt,
            std::ptr::null(),
            &options,
            &dgh,
            &dgw,
            &mut loss,
            std::ptr::null(),
            &dlse,
            &dargmax,
        )
    };
    assert_eq!(status, TokenloomStatus::Ok);

    let mut o = CrossEntropyOptions::default();
    o.label_smoothing = 0.1;
    o.softcap = Some(2.0);
    o.return_lse = true;
    o.return_argmax = true;
    let (mut gh2, mut gw2) = (vec![0f32; n * e], vec![0f32; v * e]);
    let grads = LinearCrossEntropyGrads::new()
        .with_hidden((&mut gh2[..], [n, e]))
        .unwrap()
        .with_head((&mut gw2[..], [v, e]))
        .unwrap();
    let want = linear_cross_entropy(
        (&hidden[..], [n, e]),
        (&head[..], [v, e]),
        (&targets[..], [n]),
        None,
        &o,
        Some(grads),
    )
    .unwrap();
    assert_eq!(loss.to_bits(), want.loss.to_bits());
    assert_eq!(gh, gh2);
    assert_eq!(gw, gw2);
    assert_eq!(Some(lse), want.lse);
    assert_eq!(Some(argmax), want.argmax);

    // Errors: a null loss pointer, an output aliasing an input, a bad target, a lse of
    // the wrong length, a per-token loss buffer with a reducing reduction.
    // SAFETY (each call): as above; the errors are found before anything is written.
    let call = |gh: &TokenloomTensor,
                lse: &TokenloomTensor,
                losses: *const TokenloomTensor,
                loss: *mut f64| unsafe {
        tokenloom_linear_cross_entropy(
            &dh,
            &dw,
            &dt,
            std::ptr::null(),
            &options,
            gh,
            std::ptr::null(),
            loss,
            losses,
            lse,
            std::ptr::null(),
        )
    };
    assert_eq!(
        call(&dgh, &dlse, std::ptr::null(), std::ptr::null_mut()),
        TokenloomStatus::NullPointer
    );
    assert_eq!(
        call(&dh, &dlse, std::ptr::null(), &mut loss),
        TokenloomStatus::Aliased
    );
    let mut short = vec![0f64; n - 1];
    let dshort = desc(&mut short, TokenloomDtype::F64, &[n - 1]);
    assert_eq!(
        call(&dgh, &dshort, std::ptr::null(), &mut loss),
        TokenloomStatus::BadShape
    );
    let mut per = vec![0f64; n];
    let dper = desc(&mut per, TokenloomDtype::F64, &[n]);
    assert_eq!(
        call(&dgh, &dlse, &dper, &mut loss),
        TokenloomStatus::InvalidArgument
    );
    let mut bad_targets: Vec<i64> = vec![3, 7, 0, 6, 2];
    let dbad = desc(&mut bad_targets, TokenloomDtype::I64, &[n]);
    // SAFETY: as above.
    let status = unsafe {
        tokenloom_linear_cross_entropy(
            &dh,
            &dw,
            &dbad,
            std::ptr::null(),
            &options,
            std::ptr::null(),
            std::ptr::null(),
            &mut loss,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(status, TokenloomStatus::TokenOutOfRange);
}
