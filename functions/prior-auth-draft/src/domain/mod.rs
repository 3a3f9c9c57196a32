//! The pure domain of prior authorization: policies, evaluation, the PAS-shaped Bundle and the letter.

pub mod chart;
pub mod evaluate;
pub mod logic;
pub mod policy;
