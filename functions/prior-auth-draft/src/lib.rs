//! Prior-authorization drafts: Da Vinci PAS-shaped Bundle and letter, every criterion cited, human sign-off.

pub mod domain;
