//! The FHIR R4 resources the tools read, with only the elements they read.
//!
//! Why not fhir-sdk's models: each of its resources carries `contained: Vec<Resource>`, so deserializing even
//! one concrete resource links the deserializers of all ~145 resource types — 16 MB of a 39 MB function
//! binary, against a 12 MB goal (issue 10). These types follow the R4 element names, cardinalities, choice
//! types (`onset[x]` is read from `onsetDateTime` or `onsetPeriod`) and required bindings of what they hold:
//! a missing required element, a status outside its value set or a malformed date fails the resource (the
//! caller counts it as unparsed), as fhir-sdk does. Elements not listed here are ignored, never checked.
//! `functions/patient-summary/tests/model_fidelity.rs` reads every resource of the 25 Synthea bundles with
//! both these types and fhir-sdk's and compares every element read here.

use std::fmt;
use std::num::NonZeroU32;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use time::format_description::well_known::Rfc3339;
use time::{Month, OffsetDateTime};

/// A FHIR `date`: a year, a year and month, or a full date (no time, no offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Date {
    Year(i32),
    YearMonth(i32, Month),
    Date(time::Date),
}

/// A FHIR `dateTime`: a (partial) date, or a time to the second with its offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateTime {
    Date(Date),
    DateTime(Instant),
}

/// A FHIR `instant`: to the second, with an offset (RFC 3339).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant(pub OffsetDateTime);

/// The value is not a FHIR date, dateTime or instant. Carries nothing of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadDate;

impl fmt::Display for BadDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a FHIR date")
    }
}

fn digits(text: &str, len: usize) -> Option<u32> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

impl Date {
    /// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as the R4 `date` regex allows (year 0001–9999, real calendar days).
    pub fn parse(text: &str) -> Result<Self, BadDate> {
        let mut parts = text.split('-');
        let year = parts.next().and_then(|y| digits(y, 4)).filter(|y| *y >= 1).ok_or(BadDate)?;
        let year = i32::try_from(year).map_err(|_| BadDate)?;
        let Some(month) = parts.next() else { return Ok(Self::Year(year)) };
        let month = digits(month, 2).and_then(|m| u8::try_from(m).ok()).ok_or(BadDate)?;
        let month = Month::try_from(month).map_err(|_| BadDate)?;
        let Some(day) = parts.next() else { return Ok(Self::YearMonth(year, month)) };
        let day = digits(day, 2).and_then(|d| u8::try_from(d).ok()).ok_or(BadDate)?;
        if parts.next().is_some() {
            return Err(BadDate);
        }
        time::Date::from_calendar_date(year, month, day).map(Self::Date).map_err(|_| BadDate)
    }
}

impl Instant {
    pub fn parse(text: &str) -> Result<Self, BadDate> {
        // R4 requires the seconds and the offset; RFC 3339 does too.
        OffsetDateTime::parse(text, &Rfc3339).map(Self).map_err(|_| BadDate)
    }
}

impl DateTime {
    pub fn parse(text: &str) -> Result<Self, BadDate> {
        if text.contains('T') { Instant::parse(text).map(Self::DateTime) } else { Date::parse(text).map(Self::Date) }
    }
}

macro_rules! from_str_deserialize {
    ($($type:ty),*) => {$(
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(de::Error::custom)
            }
        }
    )*};
}
from_str_deserialize!(Date, DateTime, Instant);

/// A required-binding code: a value outside the set fails the resource.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        pub enum $name { $(#[serde(rename = $code)] $variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code),* }
            }
        }
    };
}

code_enum!(AdministrativeGender { Male = "male", Female = "female", Other = "other", Unknown = "unknown" });
code_enum!(ObservationStatus {
    Registered = "registered",
    Preliminary = "preliminary",
    Final = "final",
    Amended = "amended",
    Corrected = "corrected",
    Cancelled = "cancelled",
    EnteredInError = "entered-in-error",
    Unknown = "unknown",
});
code_enum!(
    /// Procedure.status.
    EventStatus {
        Preparation = "preparation",
        InProgress = "in-progress",
        NotDone = "not-done",
        OnHold = "on-hold",
        Stopped = "stopped",
        Completed = "completed",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
);
code_enum!(EncounterStatus {
    Planned = "planned",
    Arrived = "arrived",
    Triaged = "triaged",
    InProgress = "in-progress",
    Onleave = "onleave",
    Finished = "finished",
    Cancelled = "cancelled",
    EnteredInError = "entered-in-error",
    Unknown = "unknown",
});
code_enum!(MedicationRequestStatus {
    Active = "active",
    OnHold = "on-hold",
    Cancelled = "cancelled",
    Completed = "completed",
    EnteredInError = "entered-in-error",
    Stopped = "stopped",
    Draft = "draft",
    Unknown = "unknown",
});
code_enum!(ImmunizationStatus { Completed = "completed", EnteredInError = "entered-in-error", NotDone = "not-done" });
code_enum!(AllergyIntoleranceCriticality { Low = "low", High = "high", UnableToAssess = "unable-to-assess" });

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Coding {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct CodeableConcept {
    #[serde(default)]
    pub coding: Vec<Coding>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Quantity {
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub system: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Reference {
    pub reference: Option<String>,
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Period {
    pub start: Option<DateTime>,
    pub end: Option<DateTime>,
}

/// A choice of a date-time or a period (`onset[x]`, `performed[x]`, `abatement[x]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timed<'a> {
    DateTime(&'a DateTime),
    Period(&'a Period),
}

fn timed<'a>(at: Option<&'a DateTime>, period: Option<&'a Period>) -> Option<Timed<'a>> {
    at.map(Timed::DateTime).or_else(|| period.map(Timed::Period))
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: Option<String>,
    pub gender: Option<AdministrativeGender>,
    pub birth_date: Option<Date>,
    deceased_boolean: Option<bool>,
    deceased_date_time: Option<DateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PatientDeceased<'a> {
    Boolean(bool),
    DateTime(&'a DateTime),
}

impl Patient {
    pub fn deceased(&self) -> Option<PatientDeceased<'_>> {
        self.deceased_boolean
            .map(PatientDeceased::Boolean)
            .or_else(|| self.deceased_date_time.as_ref().map(PatientDeceased::DateTime))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    onset_date_time: Option<DateTime>,
    onset_period: Option<Period>,
    abatement_date_time: Option<DateTime>,
    abatement_period: Option<Period>,
    pub recorded_date: Option<DateTime>,
}

impl Condition {
    /// `onset[x]` when a date-time or a period (an age, a range or a string places nothing in time).
    pub fn onset(&self) -> Option<Timed<'_>> {
        timed(self.onset_date_time.as_ref(), self.onset_period.as_ref())
    }
    pub fn abatement(&self) -> Option<Timed<'_>> {
        timed(self.abatement_date_time.as_ref(), self.abatement_period.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimingRepeat {
    pub frequency: Option<NonZeroU32>,
    pub period: Option<f64>,
    pub period_unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Timing {
    pub repeat: Option<TimingRepeat>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoseAndRate {
    pub dose_quantity: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage {
    pub text: Option<String>,
    pub timing: Option<Timing>,
    #[serde(default)]
    pub dose_and_rate: Vec<DoseAndRate>,
    pub as_needed_boolean: Option<bool>,
}

/// `medication[x]` (1..1).
#[derive(Debug, Clone, PartialEq)]
pub enum MedicationRequestMedication {
    CodeableConcept(CodeableConcept),
    Reference(Reference),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawMedicationRequest")]
pub struct MedicationRequest {
    pub id: Option<String>,
    pub status: MedicationRequestStatus,
    pub do_not_perform: Option<bool>,
    pub medication: MedicationRequestMedication,
    pub authored_on: Option<DateTime>,
    pub dosage_instruction: Vec<Dosage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMedicationRequest {
    id: Option<String>,
    status: MedicationRequestStatus,
    do_not_perform: Option<bool>,
    medication_codeable_concept: Option<CodeableConcept>,
    medication_reference: Option<Reference>,
    authored_on: Option<DateTime>,
    #[serde(default)]
    dosage_instruction: Vec<Dosage>,
}

/// A required choice element (`medication[x]`, `occurrence[x]`) is absent or given twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChoiceError(&'static str);

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` must be given exactly once", self.0)
    }
}

impl TryFrom<RawMedicationRequest> for MedicationRequest {
    type Error = ChoiceError;
    fn try_from(raw: RawMedicationRequest) -> Result<Self, ChoiceError> {
        let medication = match (raw.medication_codeable_concept, raw.medication_reference) {
            (Some(concept), None) => MedicationRequestMedication::CodeableConcept(concept),
            (None, Some(reference)) => MedicationRequestMedication::Reference(reference),
            _ => return Err(ChoiceError("medication[x]")),
        };
        Ok(Self {
            id: raw.id,
            status: raw.status,
            do_not_perform: raw.do_not_perform,
            medication,
            authored_on: raw.authored_on,
            dosage_instruction: raw.dosage_instruction,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergyIntolerance {
    pub id: Option<String>,
    pub clinical_status: Option<CodeableConcept>,
    pub verification_status: Option<CodeableConcept>,
    pub code: Option<CodeableConcept>,
    pub criticality: Option<AllergyIntoleranceCriticality>,
}

/// `occurrence[x]` (1..1).
#[derive(Debug, Clone, PartialEq)]
pub enum ImmunizationOccurrence {
    DateTime(DateTime),
    String(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawImmunization")]
pub struct Immunization {
    pub id: Option<String>,
    pub status: ImmunizationStatus,
    pub vaccine_code: CodeableConcept,
    pub occurrence: ImmunizationOccurrence,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImmunization {
    id: Option<String>,
    status: ImmunizationStatus,
    vaccine_code: CodeableConcept,
    occurrence_date_time: Option<DateTime>,
    occurrence_string: Option<String>,
}

impl TryFrom<RawImmunization> for Immunization {
    type Error = ChoiceError;
    fn try_from(raw: RawImmunization) -> Result<Self, ChoiceError> {
        let occurrence = match (raw.occurrence_date_time, raw.occurrence_string) {
            (Some(at), None) => ImmunizationOccurrence::DateTime(at),
            (None, Some(text)) => ImmunizationOccurrence::String(text),
            _ => return Err(ChoiceError("occurrence[x]")),
        };
        Ok(Self { id: raw.id, status: raw.status, vaccine_code: raw.vaccine_code, occurrence })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Encounter {
    pub id: Option<String>,
    pub status: EncounterStatus,
    pub class: Coding,
    #[serde(default)]
    pub r#type: Vec<CodeableConcept>,
    pub period: Option<Period>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Procedure {
    pub id: Option<String>,
    pub status: EventStatus,
    pub code: Option<CodeableConcept>,
    performed_date_time: Option<DateTime>,
    performed_period: Option<Period>,
}

impl Procedure {
    pub fn performed(&self) -> Option<Timed<'_>> {
        timed(self.performed_date_time.as_ref(), self.performed_period.as_ref())
    }
}

/// `effective[x]` when it places the result in time (a `Timing` does not).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ObservationEffective<'a> {
    DateTime(&'a DateTime),
    Period(&'a Period),
    Instant(&'a Instant),
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent {
    pub code: CodeableConcept,
    pub value_quantity: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    pub id: Option<String>,
    pub status: ObservationStatus,
    pub code: CodeableConcept,
    effective_date_time: Option<DateTime>,
    effective_period: Option<Period>,
    effective_instant: Option<Instant>,
    /// `value[x]` when a Quantity (the only kind the tools compare).
    pub value_quantity: Option<Quantity>,
    #[serde(default)]
    pub component: Vec<ObservationComponent>,
}

impl Observation {
    pub fn effective(&self) -> Option<ObservationEffective<'_>> {
        (self.effective_date_time.as_ref().map(ObservationEffective::DateTime))
            .or_else(|| self.effective_period.as_ref().map(ObservationEffective::Period))
            .or_else(|| self.effective_instant.as_ref().map(ObservationEffective::Instant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_follow_the_r4_grammar() {
        assert_eq!(Date::parse("2024"), Ok(Date::Year(2024)));
        assert_eq!(Date::parse("2024-02"), Ok(Date::YearMonth(2024, Month::February)));
        assert!(matches!(Date::parse("2024-02-29"), Ok(Date::Date(_))));
        for bad in ["", "24", "2023-02-29", "2024-13", "2024-1-01", "0000", "2024-02-01T10:00:00Z", "2024-02-01-"] {
            assert_eq!(Date::parse(bad), Err(BadDate), "{bad}");
        }
        assert!(matches!(DateTime::parse("2024-02-01T10:00:00+02:00"), Ok(DateTime::DateTime(_))));
        assert!(matches!(DateTime::parse("2024-02"), Ok(DateTime::Date(Date::YearMonth(..)))));
        for bad in ["2024-02-01T10:00", "2024-02-01T10:00:00", "2024-02-01 10:00:00Z"] {
            assert_eq!(DateTime::parse(bad), Err(BadDate), "{bad}");
        }
    }

    #[test]
    fn a_required_element_or_binding_broken_fails_the_resource() {
        let ok = serde_json::json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        assert!(serde_json::from_value::<Observation>(ok.clone()).is_ok());
        let mut bad_status = ok.clone();
        bad_status["status"] = "done".into();
        assert!(serde_json::from_value::<Observation>(bad_status).is_err());
        let mut no_code = ok;
        no_code.as_object_mut().unwrap().remove("code");
        assert!(serde_json::from_value::<Observation>(no_code).is_err());
        let both = serde_json::json!({"status": "completed", "vaccineCode": {}, "occurrenceDateTime": "2020",
            "occurrenceString": "spring"});
        assert!(serde_json::from_value::<Immunization>(both).is_err());
        let none = serde_json::json!({"status": "active", "intent": "order"});
        assert!(serde_json::from_value::<MedicationRequest>(none).is_err());
    }
}
