//! What dig and kdig print, read back for comparison.

/// The record lines of a tool's output (comments, the question and pseudo-sections left
/// out), whitespace collapsed, lowercased and sorted (rotation order aside).
pub fn record_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .collect();
    lines.sort();
    lines
}
