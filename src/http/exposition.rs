//! OpenMetrics text to the classic Prometheus text format (0.0.4), for scrapers and tools that
//! do not negotiate OpenMetrics. For the metric types this program uses (counters, gauges,
//! histograms) the formats differ only in that a counter family is named with its `_total`
//! suffix in `# HELP`/`# TYPE`, and that 0.0.4 has no `# EOF` or `# UNIT` lines.

/// Converts prometheus-client's OpenMetrics output.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut pending_help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(h) = pending_help.replace(rest) {
                push_help(&mut out, h, None);
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let renamed =
                (kind == "counter" && !name.ends_with("_total")).then(|| format!("{name}_total"));
            let family = renamed.as_deref().unwrap_or(name);
            if let Some(h) = pending_help.take() {
                push_help(&mut out, h, renamed.as_deref().map(|r| (name, r)));
            }
            out.push_str("# TYPE ");
            out.push_str(family);
            out.push(' ');
            out.push_str(kind);
            out.push('\n');
            continue;
        }
        if let Some(h) = pending_help.take() {
            push_help(&mut out, h, None);
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(h) = pending_help {
        push_help(&mut out, h, None);
    }
    out
}

fn push_help(out: &mut String, help: &str, rename: Option<(&str, &str)>) {
    out.push_str("# HELP ");
    match rename {
        Some((from, to)) if help.starts_with(from) => {
            out.push_str(to);
            out.push_str(&help[from.len()..]);
        }
        _ => out.push_str(help),
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::to_text_004;

    #[test]
    fn counters_take_their_total_name_and_eof_goes() {
        let om = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total{x=\"1\"} 3\n# HELP b Gauge.\n# TYPE b gauge\nb 1\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total{x=\"1\"} 3\n# HELP b Gauge.\n# TYPE b gauge\nb 1\n"
        );
    }
}
