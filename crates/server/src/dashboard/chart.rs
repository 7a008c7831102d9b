//! Charts drawn on the server as SVG: no script, no library, readable without a network.

use std::fmt::Write as _;

use super::data::Tally;
use super::html::esc;

/// One day's bar: the day (`YYYY-MM-DD`), successful and failed sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DayBar {
    pub day: String,
    pub successful: u64,
    pub failed: u64,
}

/// A bar for every day of `days` (oldest first), zero where `daily` has none.
pub(crate) fn day_bars(days: &[String], daily: &[Tally]) -> Vec<DayBar> {
    days.iter()
        .map(|day| {
            let tally = daily.iter().find(|t| &t.key == day);
            DayBar {
                day: day.clone(),
                successful: tally.and_then(|t| t.successful).unwrap_or(0),
                failed: tally.map_or(0, |t| t.failed),
            }
        })
        .collect()
}

/// Sessions per day, successful (bottom) and failed (top) stacked, with the scale and the
/// first and last day; each bar has a tooltip with its numbers.
pub(crate) fn stacked_days(bars: &[DayBar]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 56.0;
    const BOTTOM: f64 = 24.0;
    let max = bars
        .iter()
        .map(|b| b.successful.saturating_add(b.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = W - LEFT - 8.0;
    let plot_h = H - BOTTOM - 8.0;
    let step = plot_w / bars.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="sessions per day, successful and failed">"#
    );
    for fraction in [0.0, 0.5, 1.0] {
        let y = 8.0 + plot_h * (1.0 - fraction);
        let label = (max as f64 * fraction).round() as u64;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{LEFT}" x2="{W}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"#,
            LEFT - 6.0,
            y + 4.0
        );
    }
    for (index, bar) in bars.iter().enumerate() {
        let x = LEFT + step * index as f64 + (step - bar_w) / 2.0;
        let ok_h = plot_h * bar.successful as f64 / max as f64;
        let bad_h = plot_h * bar.failed as f64 / max as f64;
        let base = 8.0 + plot_h;
        let _ = write!(
            svg,
            r#"<g><title>{}: {} successful, {} failed</title><rect class="ok" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{ok_h:.1}"/><rect class="bad" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{bad_h:.1}"/></g>"#,
            esc(&bar.day),
            bar.successful,
            bar.failed,
            base - ok_h,
            base - ok_h - bad_h
        );
    }
    if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
        let _ = write!(
            svg,
            r#"<text class="axis" x="{LEFT}" y="{:.1}">{}</text><text class="axis" x="{W}" y="{:.1}" text-anchor="end">{}</text>"#,
            H - 6.0,
            esc(&first.day),
            H - 6.0,
            esc(&last.day)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A small chart for a card: one stacked bar per day, no labels.
pub(crate) fn sparkline(bars: &[DayBar]) -> String {
    const W: f64 = 240.0;
    const H: f64 = 40.0;
    let max = bars
        .iter()
        .map(|b| b.successful.saturating_add(b.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let step = W / bars.len().max(1) as f64;
    let bar_w = (step * 0.8).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="spark" viewBox="0 0 {W} {H}" preserveAspectRatio="none" role="img" aria-label="sessions per day">"#
    );
    for (index, bar) in bars.iter().enumerate() {
        let x = step * index as f64;
        let ok_h = H * bar.successful as f64 / max as f64;
        let bad_h = H * bar.failed as f64 / max as f64;
        let _ = write!(
            svg,
            r#"<rect class="ok" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{ok_h:.1}"/><rect class="bad" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{bad_h:.1}"/>"#,
            H - ok_h,
            H - ok_h - bad_h
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_without_reports_get_empty_bars() {
        let days = ["2024-01-01".to_owned(), "2024-01-02".to_owned()];
        let daily = [Tally {
            key: "2024-01-02".into(),
            reports: 1,
            successful: Some(9),
            failed: 1,
            ..Tally::default()
        }];
        let bars = day_bars(&days, &daily);
        assert_eq!(bars[0].successful + bars[0].failed, 0);
        assert_eq!((bars[1].successful, bars[1].failed), (9, 1));
        let svg = stacked_days(&bars);
        assert!(svg.contains("<title>2024-01-02: 9 successful, 1 failed</title>"));
    }
}
