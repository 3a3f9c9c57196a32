//! Small readers over the FHIR model (`shared::fhir::model`), so the clinical code reads like the clinic talks.

use shared::fhir::model::{CodeableConcept, Coding, Date, DateTime, Instant};
use time::{Month, OffsetDateTime};

/// `"<ResourceType>/<id>"`, or `None` when the resource has no id and so cannot be cited.
pub(crate) fn cite(resource_type: &str, id: Option<&String>) -> Option<String> {
    id.filter(|id| !id.is_empty()).map(|id| format!("{resource_type}/{id}"))
}

pub(crate) fn codings(concept: &CodeableConcept) -> impl Iterator<Item = &Coding> {
    concept.coding.iter()
}

pub(crate) fn coding_is(coding: &Coding, system: &str, code: &str) -> bool {
    coding.system.as_deref() == Some(system) && coding.code.as_deref() == Some(code)
}

pub(crate) fn has_code(concept: &CodeableConcept, system: &str, code: &str) -> bool {
    codings(concept).any(|c| coding_is(c, system, code))
}

/// The first LOINC code of the concept that is in `wanted`.
pub(crate) fn loinc_in<'a>(concept: &CodeableConcept, wanted: &[&'a str]) -> Option<&'a str> {
    codings(concept)
        .filter(|c| c.system.as_deref() == Some(super::codes::LOINC))
        .find_map(|c| wanted.iter().copied().find(|w| c.code.as_deref() == Some(*w)))
}

/// What a clinician would call the concept: its text, else the first coding display, else the code.
pub(crate) fn concept_display(concept: &CodeableConcept) -> Option<String> {
    let text = concept.text.as_deref().filter(|t| !t.trim().is_empty());
    text.or_else(|| codings(concept).find_map(|c| c.display.as_deref().filter(|d| !d.trim().is_empty())))
        .or_else(|| codings(concept).find_map(|c| c.code.as_deref()))
        .map(|s| s.trim().to_owned())
}

/// The coding that best identifies a clinical concept: SNOMED first (what problem lists speak), then
/// ICD-10-CM, then RxNorm/anything else that has both a system and a code.
pub(crate) fn primary_coding(concept: &CodeableConcept) -> Option<&Coding> {
    let complete = || codings(concept).filter(|c| c.system.is_some() && c.code.is_some());
    let preferred = [super::codes::SNOMED, super::codes::ICD10_CM];
    preferred
        .iter()
        .find_map(|system| complete().find(|c| c.system.as_deref() == Some(*system)))
        .or_else(|| complete().next())
}

/// A point in the record's time line: the calendar date as written (partial dates start at the first
/// day of their period) plus an ordering key that keeps same-day instants in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct When {
    pub date: time::Date,
    pub text: String,
    key: i64,
}

impl When {
    pub(crate) fn key(&self) -> i64 {
        self.key
    }
}

pub(crate) fn when_date(date: &Date) -> Option<When> {
    let (day, text) = match date {
        Date::Year(year) => (time::Date::from_calendar_date(*year, Month::January, 1).ok()?, format!("{year:04}")),
        Date::YearMonth(year, month) => {
            (time::Date::from_calendar_date(*year, *month, 1).ok()?, format!("{year:04}-{:02}", u8::from(*month)))
        }
        Date::Date(day) => (*day, iso(*day)),
    };
    Some(When { date: day, text, key: day.midnight().assume_utc().unix_timestamp() })
}

pub(crate) fn when_instant(instant: &Instant) -> When {
    let Instant(at): &Instant = instant;
    when_offset(*at)
}

fn when_offset(at: OffsetDateTime) -> When {
    // The date as written in the record's own offset, so it matches what the source system shows.
    When { date: at.date(), text: iso(at.date()), key: at.unix_timestamp() }
}

pub(crate) fn when_datetime(value: &DateTime) -> Option<When> {
    match value {
        DateTime::Date(date) => when_date(date),
        DateTime::DateTime(instant) => Some(when_instant(instant)),
    }
}

pub(crate) fn iso(date: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day())
}

/// Whole years from `birth` to `on`; `None` for a partial birth date, where the answer could be a year off.
pub(crate) fn age_in_years(birth: &Date, on: time::Date) -> Option<u32> {
    let Date::Date(birth) = birth else {
        return None;
    };
    let mut years = on.year() - birth.year();
    if (u8::from(on.month()), on.day()) < (u8::from(birth.month()), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// `on` minus whole calendar months, clamping the day (Aug 31 minus 6 months is Feb 28/29).
pub(crate) fn months_before(on: time::Date, months: u8) -> time::Date {
    let index = on.year() * 12 + i32::from(u8::from(on.month())) - 1 - i32::from(months);
    let year = index.div_euclid(12);
    let month_number = u8::try_from(index.rem_euclid(12) + 1).unwrap_or(1);
    let month = Month::try_from(month_number).unwrap_or(Month::January);
    let day = on.day().min(month.length(year));
    time::Date::from_calendar_date(year, month, day).unwrap_or(on)
}

/// Aug 1 that opens the influenza season `on` falls in.
pub(crate) fn influenza_season_start(on: time::Date) -> time::Date {
    let year = if u8::from(on.month()) >= u8::from(Month::August) { on.year() } else { on.year() - 1 };
    time::Date::from_calendar_date(year, Month::August, 1).unwrap_or(on)
}
