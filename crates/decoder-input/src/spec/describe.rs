//! The per-layer picture of a model in words and groups, for `inspect` and messages.

use super::LayerPositions;

/// The distinct entries of `layers`, each with the indices that share it.
pub(super) fn layer_groups(layers: &[LayerPositions]) -> Vec<(Vec<usize>, &LayerPositions)> {
    let mut groups: Vec<(Vec<usize>, &LayerPositions)> = Vec::new();
    for (il, layer) in layers.iter().enumerate() {
        match groups.iter_mut().find(|(_, l)| *l == layer) {
            Some((list, _)) => list.push(il),
            None => groups.push((vec![il], layer)),
        }
    }
    groups
}

/// One line per group of layers with the same treatment of q and k.
pub(crate) fn describe_layers(layers: &[LayerPositions]) -> Vec<String> {
    layer_groups(layers)
        .into_iter()
        .map(|(indices, l)| {
            let what = match (&l.rope, &l.q_scale) {
                (Some(rope), _) => format!(
                    "RoPE {} head_dim {} rotary_dim {} theta {} scaling {}{}{}",
                    rope.layout.name(),
                    rope.head_dim,
                    rope.rotary_dim,
                    rope.theta,
                    rope.scaling,
                    if l.deinterleave_output {
                        ", output de-interleaved"
                    } else {
                        ""
                    },
                    l.mrope_section
                        .as_ref()
                        .map_or_else(String::new, |s| format!(", M-RoPE sections {s:?}"))
                ),
                (None, Some(t)) => format!(
                    "no RoPE (NoPE); q scaled by log1p(floor((pos + 1) / {})) * {} + 1",
                    t.floor_scale, t.attn_scale
                ),
                (None, None) => "no RoPE (NoPE)".to_owned(),
            };
            format!(
                "{} ({}): {what}",
                layer_ranges(&indices),
                l.attention.short_name()
            )
        })
        .collect()
}

/// `0-4, 6-10, 12` from a sorted list of layer indices.
fn layer_ranges(layers: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < layers.len() {
        let start = layers[i];
        let mut end = start;
        while i + 1 < layers.len() && layers[i + 1] == end + 1 {
            i += 1;
            end = layers[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    let word = if layers.len() == 1 { "layer" } else { "layers" };
    format!("{word} {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_ranges_compress_runs() {
        assert_eq!(layer_ranges(&[0, 1, 2, 4, 6, 7]), "layers 0-2, 4, 6-7");
        assert_eq!(layer_ranges(&[5]), "layer 5");
    }
}
