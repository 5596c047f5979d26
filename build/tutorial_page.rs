//! The tutorial as the facade crate's doc page: `docs/tutorial.md` with its figures
//! inlined as `data:` URIs (rustdoc does not copy `docs/figures/*.svg`, so plain links
//! would be broken images on docs.rs) and its links to the other guides made absolute.
//! Shared by `build.rs` and `tests/tutorial_page.rs`.

/// The doc page for `markdown`: every `](figures/NAME.svg)` becomes an inline SVG image
/// read by `read_figure(NAME.svg)`, and every `](NAME.md)` a link into `repository`.
pub fn render(
    markdown: &str,
    read_figure: impl Fn(&str) -> std::io::Result<Vec<u8>>,
    repository: &str,
) -> std::io::Result<String> {
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(start) = rest.find("](") {
        out.push_str(&rest[..start + 2]);
        rest = &rest[start + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = &rest[..end];
        if let Some(name) = target
            .strip_prefix("figures/")
            .filter(|n| n.ends_with(".svg"))
        {
            out.push_str("data:image/svg+xml;base64,");
            out.push_str(&base64(&read_figure(name)?));
        } else if target.ends_with(".md") && !target.contains("://") && !target.contains('/') {
            out.push_str(&format!("{repository}/blob/main/docs/{target}"));
        } else {
            out.push_str(target);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Standard base64 with padding (RFC 4648).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
