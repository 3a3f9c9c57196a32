//! ICD-10-CM coding proposals from encounter notes, with evidence spans, grounding scores and a FHIR history
//! cross-check. Nothing is written back: the reply is a proposal list for a human coder.

pub mod coder;
pub mod table;
