//! The pure domain of prior authorization: policies, evaluation, the PAS-shaped Bundle and the letter.

pub mod chart;
pub mod evaluate;
pub mod letter;
pub mod logic;
pub mod pas;
pub mod policy;
