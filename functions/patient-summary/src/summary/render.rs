//! The two readings of a summary: a plain-text card for the clinician and cited sentences for the writer.

use std::fmt::Write as _;

use shared::writer::Statement;

use super::{LabResult, LabTrend, Measurement, PatientSummary, Trend};

/// How many vaccines the text card lists before summarising the rest; the JSON keeps them all.
const VACCINES_SHOWN: usize = 5;

fn lab_value(result: &LabResult) -> String {
    match &result.unit {
        Some(unit) => format!("{:.1} {unit}", result.value),
        None => format!("{:.1}", result.value),
    }
}

fn measurement(m: &Measurement) -> String {
    match &m.unit {
        Some(unit) => format!("{:.1} {unit}", m.value),
        None => format!("{:.1}", m.value),
    }
}

fn trend_word(trend: Trend) -> &'static str {
    match trend {
        Trend::Up => "up",
        Trend::Down => "down",
        Trend::Stable => "stable",
        Trend::Single => "single result",
    }
}

fn lab_line(lab: &LabTrend) -> String {
    let mut line = format!("{} {} ({})", lab.name, lab_value(&lab.latest), lab.latest.date);
    if let Some(previous) = &lab.previous {
        let _ = write!(line, ", {} from {} ({})", trend_word(lab.trend), lab_value(previous), previous.date);
    }
    line
}

fn who(summary: &PatientSummary) -> String {
    let age = summary.patient.age_years.map(|a| format!("{a} y"));
    let sex = summary.patient.sex.clone();
    let mut parts: Vec<String> = age.into_iter().chain(sex).collect();
    if summary.patient.deceased {
        parts.push("deceased".to_owned());
    }
    if parts.is_empty() { "age and sex not recorded".to_owned() } else { parts.join(", ") }
}

/// A short card a clinician reads in 20 seconds: one line per fact, empty sections say so.
pub fn render_text(summary: &PatientSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Pre-visit summary as of {}", summary.as_of);
    let _ = writeln!(out, "Patient: {}", who(summary));

    section(&mut out, "Care gaps", summary.care_gaps.iter().map(|g| format!("{}: {}", g.title, g.detail)));
    section(
        &mut out,
        "Problems",
        summary.problems.iter().map(|p| match &p.onset {
            Some(onset) => format!("{} (since {onset})", p.display),
            None => p.display.clone(),
        }),
    );
    section(
        &mut out,
        "Medications",
        summary.medications.iter().map(|m| match &m.dosage {
            Some(dosage) => format!("{} — {dosage}", m.display),
            None => m.display.clone(),
        }),
    );
    section(
        &mut out,
        "Allergies",
        summary.allergies.iter().map(|a| match &a.criticality {
            Some(criticality) => format!("{} (criticality {criticality})", a.display),
            None => a.display.clone(),
        }),
    );
    section(&mut out, "Labs", summary.labs.iter().map(lab_line));

    let vitals = &summary.vitals;
    let bp = vitals.blood_pressure.iter().map(|bp| {
        format!("BP {:.0}/{:.0} {} ({})", bp.systolic, bp.diastolic, bp.unit.as_deref().unwrap_or("mmHg"), bp.date)
    });
    let bmi = vitals.bmi.iter().map(|m| format!("BMI {} ({})", measurement(m), m.date));
    let weight = vitals.body_weight.iter().map(|m| format!("Weight {} ({})", measurement(m), m.date));
    section(&mut out, "Vitals", bp.chain(bmi).chain(weight));

    let hidden = summary.immunizations.len().saturating_sub(VACCINES_SHOWN);
    let vaccines = summary.immunizations.iter().take(VACCINES_SHOWN).map(|i| format!("{} ({})", i.display, i.date));
    let more = (hidden > 0).then(|| format!("… and {hidden} older vaccine(s)"));
    section(&mut out, "Immunizations", vaccines.chain(more));

    section(
        &mut out,
        "Recent encounters",
        summary.recent_encounters.iter().map(|e| {
            let start = e.start.as_deref().unwrap_or("date unknown");
            let kind = e.type_display.as_deref().unwrap_or("Encounter");
            match &e.class_code {
                Some(class) => format!("{start} {kind} ({class})"),
                None => format!("{start} {kind}"),
            }
        }),
    );
    if !summary.notes.is_empty() {
        section(&mut out, "Notes", summary.notes.iter().cloned());
    }
    out
}

fn section(out: &mut String, title: &str, lines: impl Iterator<Item = String>) {
    let _ = writeln!(out, "\n{title}:");
    let mut any = false;
    for line in lines {
        any = true;
        let _ = writeln!(out, "- {line}");
    }
    if !any {
        let _ = writeln!(out, "- none on record");
    }
}

/// The key facts as plain clinical sentences, each with the references it rests on, for the writer.
pub fn statements(summary: &PatientSummary) -> Vec<Statement> {
    let mut said = Vec::new();
    let patient_sources: Vec<String> =
        Some(summary.patient.reference.clone()).filter(|r| !r.is_empty()).into_iter().collect();

    let patient = &summary.patient;
    let description = match (patient.age_years, patient.sex.as_deref()) {
        (Some(age), Some(sex)) => format!("the patient is a {age}-year-old {sex}"),
        (Some(age), None) => format!("the patient is {age} years old"),
        (None, Some(sex)) => format!("the patient is {sex}; age is not recorded"),
        (None, None) => "the patient's age and sex are not recorded".to_owned(),
    };
    let description = if patient.deceased { format!("{description} and is deceased") } else { description };
    said.push(Statement { text: description, sources: patient_sources });

    if !summary.problems.is_empty() {
        let names: Vec<&str> = summary.problems.iter().map(|p| p.display.as_str()).collect();
        let sources = summary.problems.iter().flat_map(|p| p.sources.iter().cloned()).collect();
        said.push(Statement { text: format!("Active problems: {}", names.join("; ")), sources });
    }
    if !summary.medications.is_empty() {
        let names: Vec<&str> = summary.medications.iter().map(|m| m.display.as_str()).collect();
        let sources = summary.medications.iter().flat_map(|m| m.sources.iter().cloned()).collect();
        said.push(Statement { text: format!("Active medications: {}", names.join("; ")), sources });
    }
    if !summary.allergies.is_empty() {
        let names: Vec<&str> = summary.allergies.iter().map(|a| a.display.as_str()).collect();
        let sources = summary.allergies.iter().flat_map(|a| a.sources.iter().cloned()).collect();
        said.push(Statement { text: format!("Recorded allergies: {}", names.join("; ")), sources });
    }
    for lab in &summary.labs {
        let text = match (&lab.previous, lab.trend) {
            (Some(previous), trend) => format!(
                "{} was {} on {}, {} from {} on {}",
                lab.name,
                lab_value(&lab.latest),
                lab.latest.date,
                trend_word(trend),
                lab_value(previous),
                previous.date
            ),
            (None, _) => format!("{} was {} on {}", lab.name, lab_value(&lab.latest), lab.latest.date),
        };
        said.push(Statement { text, sources: lab.sources.clone() });
    }
    if let Some(bp) = &summary.vitals.blood_pressure {
        said.push(Statement {
            text: format!("The latest blood pressure was {:.0}/{:.0} mmHg on {}", bp.systolic, bp.diastolic, bp.date),
            sources: vec![bp.source.clone()],
        });
    }
    if let Some(bmi) = &summary.vitals.bmi {
        said.push(Statement {
            text: format!("The latest BMI was {} on {}", measurement(bmi), bmi.date),
            sources: vec![bmi.source.clone()],
        });
    }
    if let Some(weight) = &summary.vitals.body_weight {
        said.push(Statement {
            text: format!("The latest body weight was {} on {}", measurement(weight), weight.date),
            sources: vec![weight.source.clone()],
        });
    }
    for gap in &summary.care_gaps {
        said.push(Statement { text: format!("Care gap: {}", gap.detail), sources: gap.sources.clone() });
    }
    said
}
