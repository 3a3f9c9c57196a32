//! Prior-authorization drafts: Da Vinci PAS-shaped Bundle and letter, every criterion cited, human sign-off.

pub mod args;
pub mod domain;
pub mod handler;
pub mod policies;
pub mod store;

pub use handler::PriorAuthTool;

/// The tools' input schemas, for the OpenAPI and MCP renderings (`shared::schema`).
pub fn tool_schemas() -> Vec<shared::schema::ToolSchema> {
    vec![
        shared::schema::ToolSchema::new::<args::DraftArgs>(
            "prior_auth_draft",
            "Drafts a prior-authorization request (a Da Vinci PAS-shaped FHIR Bundle and a letter of medical \
             necessity) for a patient and a requested service: each payer criterion is checked against the \
             record and reported met, not met or insufficient evidence, with the FHIR resources it rests on. \
             The draft is not final until a treating clinician finalizes it.",
        ),
        shared::schema::ToolSchema::new::<args::FinalizeArgs>(
            "prior_auth_finalize",
            "Finalizes (attests) a stored prior-authorization draft. Only a treating clinician may; a draft \
             with unmet criteria needs an override reason.",
        ),
    ]
}
