//! Hourly bar charts drawn on the server as SVG (no script): the overview's events per hour
//! and each provider's lag over the last day. Each bar's figure is its tooltip and the chart's
//! label says what it shows, for screen readers; an hour without a figure (a provider's lag
//! not sampled then) is drawn as a thin grey mark, not as a zero.

use super::layout;
use crate::audit::activity::Hour;
use crate::provider::lag::{self, LagHour};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

/// One hour's bar.
pub struct Bar {
    pub start: DateTime<Utc>,
    pub value: Option<u64>,
}

/// The events recorded in each hour.
pub fn events(hours: &[Hour]) -> Vec<Bar> {
    hours
        .iter()
        .map(|h| Bar {
            start: h.start,
            value: Some(h.events),
        })
        .collect()
}

/// A provider's most lag in each of the last day's hours up to `now`; `None` for the hours
/// that were not sampled.
pub fn lag(sampled: &[LagHour], now: DateTime<Utc>) -> Vec<Bar> {
    let first = lag::first_hour(now);
    (0..lag::HOURS as i64)
        .map(|i| {
            let start = first + Duration::hours(i);
            Bar {
                start,
                value: sampled.iter().find(|h| h.hour == start).map(|h| h.max),
            }
        })
        .collect()
}

/// How a chart is drawn: its size, and whether hours are written under the bars.
#[derive(Clone, Copy)]
pub enum Size {
    /// The width of the page, every sixth hour written under its bar.
    Wide,
    /// A sparkline that fits a table's cell.
    Small,
}

/// `bars` as a bar chart labelled `label`, each bar's tooltip its figure followed by `unit`.
pub fn hourly(bars: &[Bar], label: &str, unit: &str, size: Size) -> Markup {
    // Above the bars, room for the peak's figure; below them, for the hours.
    let (w, top, h, axis, class) = match size {
        Size::Wide => (720.0, 18.0, 120.0, 24.0, "chart"),
        Size::Small => (120.0, 0.0, 24.0, 0.0, "chart spark"),
    };
    let peak = bars.iter().filter_map(|b| b.value).max().unwrap_or(0);
    let max = peak.max(1) as f64;
    let step = w / bars.len().max(1) as f64;
    let gap = if step > 8.0 { 2.0 } else { 0.5 };
    html! {
        svg class=(class) viewBox=(format!("0 0 {w} {}", top + h + axis)) role="img" aria-label=(label) {
            title { (label) }
            @if axis > 0.0 {
                text.peak x=(format!("{:.1}", w - 4.0)) y="13" { "peak " (layout::count(peak)) " " (unit) }
            }
            @for (i, bar) in bars.iter().enumerate() {
                @let x = i as f64 * step + gap;
                @let width = format!("{:.1}", step - 2.0 * gap);
                @let hour = bar.start.format("%H:00");
                @match bar.value {
                    Some(v) => {
                        @let height = (v as f64 / max * h).max(if v > 0 { 1.0 } else { 0.0 });
                        rect x=(format!("{x:.1}")) y=(format!("{:.1}", top + h - height)) width=(width) height=(format!("{height:.1}")) {
                            title { (hour) ": " (layout::count(v)) " " (unit) }
                        }
                    }
                    None => {
                        rect.none x=(format!("{x:.1}")) y=(format!("{:.1}", top + h - 1.0)) width=(width) height="1" {
                            title { (hour) ": not sampled" }
                        }
                    }
                }
                @if axis > 0.0 && i % 6 == 0 {
                    text x=(format!("{x:.1}")) y=(format!("{}", top + h + 16.0)) { (hour) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_lag_chart_has_a_bar_for_every_hour_of_the_day_and_leaves_unsampled_hours_empty() {
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 17, 25, 0).unwrap();
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 6, h, 0, 0).unwrap();
        let sampled = [
            LagHour {
                hour: at(9),
                max: 40,
                last: 0,
                samples: 60,
            },
            LagHour {
                hour: at(17),
                max: 3,
                last: 3,
                samples: 25,
            },
        ];
        let bars = lag(&sampled, now);
        assert_eq!(bars.len(), 24);
        assert_eq!(
            bars[0].start,
            Utc.with_ymd_and_hms(2026, 12, 5, 18, 0, 0).unwrap()
        );
        assert_eq!(bars[23].start, at(17));
        assert_eq!(bars[23].value, Some(3));
        assert_eq!(bars[15].value, Some(40));
        assert_eq!(bars.iter().filter(|b| b.value.is_none()).count(), 22);
        let svg = hourly(&bars, "lag", "records behind", Size::Small).into_string();
        assert!(svg.contains("09:00: 40 records behind"), "{svg}");
        assert!(svg.contains("10:00: not sampled"), "{svg}");
    }
}
