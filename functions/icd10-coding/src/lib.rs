//! ICD-10-CM coding proposals from encounter notes, with evidence spans, grounding scores and a FHIR history cross-check.
