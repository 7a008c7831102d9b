//! `date-time` values (RFC 3339 §5.6) as UTC seconds, without a date-time dependency.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

const SECONDS_PER_DAY: i64 = 86_400;
/// Seconds from 0000-01-01T00:00:00Z to the Unix epoch: the earliest year RFC 3339 can write.
const MIN_UNIX_SECONDS: i64 = -62_167_219_200;
/// Seconds from the Unix epoch to 9999-12-31T23:59:59Z: the latest RFC 3339 can write.
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// A point in time from a report, in UTC seconds, with the text it was read from.
///
/// Two timestamps are equal when they name the same second, whatever their original text
/// (`2023-01-10T00:00:00` read as UTC equals `2023-01-10T00:00:00Z`). Fractions of a second are
/// dropped. [`fmt::Display`] writes the RFC 3339 form RFC 8460 asks for, in UTC with `Z`.
#[derive(Debug, Clone)]
pub struct Timestamp {
    unix_seconds: i64,
    original: String,
}

impl Timestamp {
    /// Reads an RFC 3339 date-time as reports carry them (`2024-01-09T00:00:00Z`, with an
    /// offset, or without a zone, read as UTC); `None` when it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        parse_date_time(text).map(|(timestamp, _)| timestamp)
    }

    /// The timestamp `unix_seconds` after the Unix epoch; `None` outside the years 0000–9999,
    /// which RFC 3339 cannot write.
    pub fn from_unix_seconds(unix_seconds: i64) -> Option<Self> {
        if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&unix_seconds) {
            return None;
        }
        let mut timestamp = Self {
            unix_seconds,
            original: String::new(),
        };
        timestamp.original = timestamp.to_string();
        Some(timestamp)
    }

    /// The timestamp `unix_seconds` after the Unix epoch, clamped to the years 0000–9999.
    pub(super) fn clamped(unix_seconds: i64) -> Self {
        let unix_seconds = unix_seconds.clamp(MIN_UNIX_SECONDS, MAX_UNIX_SECONDS);
        let mut timestamp = Self {
            unix_seconds,
            original: String::new(),
        };
        timestamp.original = timestamp.to_string();
        timestamp
    }

    /// Seconds since the Unix epoch, UTC.
    pub fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// The text the timestamp was read from, as sent (the RFC 3339 form when built from
    /// seconds).
    pub fn original(&self) -> &str {
        &self.original
    }
}

impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.unix_seconds == other.unix_seconds
    }
}

impl Eq for Timestamp {}

impl Hash for Timestamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.unix_seconds.hash(state);
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> Ordering {
        self.unix_seconds.cmp(&other.unix_seconds)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = self.unix_seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}

/// Whether a parsed date-time carried a zone: senders that leave it out (Microsoft, 2023) mean
/// UTC, and the reader warns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zone {
    /// `Z` or a numeric offset was given.
    Given,
    /// No zone: read as UTC.
    Missing,
}

/// Reads an RFC 3339 `date-time`, also accepting one without a zone (read as UTC). `None` when
/// the text is not such a date-time.
pub(super) fn parse_date_time(text: &str) -> Option<(Timestamp, Zone)> {
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.digits(4)?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    // RFC 3339 §5.6 allows a lowercase `t` and, "for readability", a space.
    if !(cursor.eat(b'T') || cursor.eat(b't') || cursor.eat(b' ')) {
        return None;
    }
    let hour = cursor.digits(2)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2)?;
    cursor.expect(b':')?;
    let second = cursor.digits(2)?;
    if cursor.eat(b'.') {
        cursor.skip_digits(1)?;
    }
    let (zone, offset_seconds) = if cursor.eat(b'Z') || cursor.eat(b'z') {
        (Zone::Given, 0)
    } else if cursor.is_empty() {
        (Zone::Missing, 0)
    } else {
        let sign = if cursor.eat(b'+') {
            1
        } else if cursor.eat(b'-') {
            -1
        } else {
            return None;
        };
        let offset_hour = cursor.digits(2)?;
        cursor.expect(b':')?;
        let offset_minute = cursor.digits(2)?;
        if offset_hour > 23 || offset_minute > 59 {
            return None;
        }
        (
            Zone::Given,
            sign * (offset_hour * 3600 + offset_minute * 60),
        )
    };
    if !cursor.is_empty()
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second (RFC 3339 §5.7); it reads as the first second of the next minute.
        || second > 60
    {
        return None;
    }
    let unix_seconds =
        days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
            - offset_seconds;
    // An offset or a leap second can carry year 0000 or 9999 past what RFC 3339 can write back.
    if !(MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS).contains(&unix_seconds) {
        return None;
    }
    let timestamp = Timestamp {
        unix_seconds,
        original: text.to_owned(),
    };
    Some((timestamp, zone))
}

/// A cursor over the bytes of a date-time: reads advance it, nothing indexes.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn eat(&mut self, byte: u8) -> bool {
        match self.0.split_first() {
            Some((&first, rest)) if first == byte => {
                self.0 = rest;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Exactly `count` ASCII digits as a number.
    fn digits(&mut self, count: usize) -> Option<i64> {
        let (taken, rest) = self.0.split_at_checked(count)?;
        let mut value = 0;
        for &byte in taken {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(byte - b'0');
        }
        self.0 = rest;
        Some(value)
    }

    /// At least `minimum` ASCII digits, whose value does not matter.
    fn skip_digits(&mut self, minimum: usize) -> Option<()> {
        let count = self
            .0
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if count < minimum {
            return None;
        }
        self.0 = self.0.get(count..)?;
        Some(())
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(text: &str) -> Option<i64> {
        parse_date_time(text).map(|(timestamp, _)| timestamp.unix_seconds())
    }

    #[test]
    fn utc_date_time_reads_as_unix_seconds() {
        assert_eq!(seconds("2016-04-01T00:00:00Z"), Some(1_459_468_800));
        assert_eq!(seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(seconds("2024-02-29T23:59:59z"), Some(1_709_251_199));
    }

    #[test]
    fn offset_is_subtracted_to_reach_utc() {
        assert_eq!(seconds("2016-04-01T02:00:00+02:00"), Some(1_459_468_800));
        assert_eq!(seconds("2016-03-31T19:30:00-04:30"), Some(1_459_468_800));
    }

    #[test]
    fn fraction_of_a_second_is_dropped() {
        assert_eq!(seconds("2016-04-01T00:00:00.999Z"), Some(1_459_468_800));
    }

    #[test]
    fn missing_zone_reads_as_utc_and_is_reported() {
        let (timestamp, zone) =
            parse_date_time("2023-01-10T00:00:00").expect("a date-time without zone reads");
        assert_eq!(zone, Zone::Missing);
        assert_eq!(timestamp.to_string(), "2023-01-10T00:00:00Z");
        assert_eq!(timestamp.original(), "2023-01-10T00:00:00");
    }

    #[test]
    fn space_separator_is_allowed_by_rfc3339() {
        assert_eq!(seconds("2016-04-01 00:00:00Z"), Some(1_459_468_800));
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for text in [
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:60:00Z",
            "2023-01-01T00:00:61Z",
            "2023-01-01T00:00:00+24:00",
            "2023-01-01T00:00:00.Z",
            "2023-01-01T00:00:00ZZ",
            "2023-01-01",
            "9999-12-31T23:59:60Z",
            "0000-01-01T00:00:00+00:01",
            "+2023-01-01T00:00:00Z",
            "２０２３-01-01T00:00:00Z",
            "",
        ] {
            assert_eq!(seconds(text), None, "{text}");
        }
    }

    #[test]
    fn display_round_trips_through_the_parser() {
        for unix_seconds in [
            MIN_UNIX_SECONDS,
            -1,
            0,
            951_782_400, // 2000-02-29
            1_709_251_199,
            MAX_UNIX_SECONDS,
        ] {
            let timestamp = Timestamp::from_unix_seconds(unix_seconds);
            let text = timestamp.map(|timestamp| timestamp.to_string());
            assert_eq!(
                text.as_deref().and_then(seconds),
                Some(unix_seconds),
                "{text:?}"
            );
        }
    }

    #[test]
    fn seconds_outside_rfc3339_years_are_refused() {
        assert!(Timestamp::from_unix_seconds(MIN_UNIX_SECONDS - 1).is_none());
        assert!(Timestamp::from_unix_seconds(MAX_UNIX_SECONDS + 1).is_none());
        assert!(Timestamp::from_unix_seconds(i64::MIN).is_none());
    }
}
